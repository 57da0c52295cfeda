"""Code that runs inside a lab network namespace, from a thread of this process.

A network namespace is per thread: a thread that setns()'s into `/run/netns/<name>` makes
its sockets there, and so do the threads it starts (a new thread gets its creator's
namespaces). `NetnsWorker` is such a thread that runs the callables it is given, one at a
time (the lab's NFSv3/NLM client and its NSM listener live in one); `in_netns` runs one
callable in a short-lived one (a readiness check from the node's own network).
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, TypeVar

from .. import linux

T = TypeVar("T")


class NetnsWorker:
    """A thread inside network namespace `netns` running the callables it is given.

    `worker(fn)` returns fn's result or raises what fn raised; TimeoutError when no answer
    came in `timeout` seconds (the callable still runs to its end in the thread). Raises
    OSError at construction when the namespace cannot be entered."""

    def __init__(self, netns: str, name: str | None = None) -> None:
        self._q: queue.Queue = queue.Queue()
        self._netns = netns
        self._entered = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name or f"gha-{netns}", daemon=True)
        self._thread.start()
        self._entered.wait(10)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            linux.setns_path(f"/run/netns/{self._netns}", linux.CLONE_NEWNET)
        except BaseException as exc:
            self._error = exc
            return
        finally:
            self._entered.set()
        while True:
            fn, box, done = self._q.get()
            if fn is None:
                return
            try:
                box.append((True, fn()))
            except BaseException as exc:
                box.append((False, exc))
            done.set()

    def __call__(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        box: list = []
        done = threading.Event()
        self._q.put((fn, box, done))
        if not done.wait(timeout):
            raise TimeoutError(f"no answer from the worker in {self._netns} in {timeout} s")
        ok, value = box[0]
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        self._q.put((None, None, None))
        self._thread.join(5)


def in_netns(netns: str, fn: Callable[[], T], timeout: float = 10.0) -> T:
    """fn() run by a new thread inside network namespace `netns` (OSError if it cannot
    enter, TimeoutError if fn takes longer than `timeout` s)."""
    worker = NetnsWorker(netns)
    try:
        return worker(fn, timeout)
    finally:
        worker.stop()

"""Code that runs inside a lab network namespace, from a thread of this process.

A network namespace is per thread: a thread that setns()'s into `/run/netns/<name>` makes
its sockets there, and so do the threads it starts (a new thread gets its creator's
namespaces). `NetnsLoop` is the life cycle every such thread of the lab shares: enter the
namespace, set up (a client made there), report either to `start()`, loop until `stop()`,
tear down; with a queue through which other threads hand it callables to run there.
`NetnsWorker` is a loop that only runs the callables it is given, one at a time (the lab's
NFSv3/NLM client and its NSM listener live in one); `in_netns` runs one callable in a
short-lived one (a readiness check from the node's own network). The lab's NFSv4 client
(labclient.LabClient) and its new-open probe (openprobe.NewOpenProbe) are loops too.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, wait
from typing import Callable, Self, TypeVar

from .. import linux

T = TypeVar("T")


class NetnsLoop:
    """A daemon thread named `name` inside network namespace `netns`.

    Subclasses give `_setup()` (in the thread, once inside; what it raises fails `start()`),
    `_loop()` (runs until `_stop` is set; `_serve_one` runs what `_call` queued) and
    `_teardown()` (after the loop, also when it raised). `what` names the thread in errors."""

    what = "thread"

    def __init__(self, netns: str, name: str) -> None:
        self.netns = netns
        self._q: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    # ---- from other threads -------------------------------------------------------------
    def start(self) -> Self:
        """Start the thread and wait (up to 10 s) until it is inside and set up; raises
        `_start_failed(error)` (RuntimeError naming the namespace) when it could not be."""
        self._thread.start()
        self._ready.wait(10)
        if self._start_error is not None:
            raise self._start_failed(self._start_error)
        return self

    def stop(self) -> None:
        """Ask the loop to end (and wake it if it waits for work); wait up to 5 s for it."""
        self._stop.set()
        self._q.put((None, None))
        self._thread.join(5)

    def _start_failed(self, exc: BaseException) -> BaseException:
        return RuntimeError(f"{self.what} could not enter {self.netns}: {exc}")

    def _call(self, fn: Callable[[], T], timeout: float) -> T:
        """fn() run by the thread (inside the namespace): its result, or what it raised;
        TimeoutError when no answer came in `timeout` s (fn still runs to its end there)."""
        fut: Future = Future()
        self._q.put((fn, fut))
        if not wait([fut], timeout).done:
            raise TimeoutError(f"no answer from {self._thread.name} in {self.netns} in {timeout} s")
        return fut.result()

    # ---- in the thread ------------------------------------------------------------------
    def _main(self) -> None:
        try:
            linux.setns_path(f"/run/netns/{self.netns}", linux.CLONE_NEWNET)
            self._setup()
        except BaseException as exc:  # reported by start()
            self._start_error = exc
            return
        finally:
            self._ready.set()
        try:
            self._loop()
        finally:
            self._teardown()

    def _serve_one(self, timeout: float | None) -> bool:
        """Run the next callable `_call` queued, waiting up to `timeout` s (None: until one
        comes or `stop()`); False when none was run."""
        try:
            fn, fut = self._q.get(timeout=timeout)
        except queue.Empty:
            return False
        if fn is None:            # stop()'s wake-up
            return False
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
        return True

    def _setup(self) -> None:
        pass

    def _loop(self) -> None:
        raise NotImplementedError

    def _teardown(self) -> None:
        pass


class NetnsWorker(NetnsLoop):
    """A thread inside network namespace `netns` running the callables it is given.

    `worker(fn)` returns fn's result or raises what fn raised; TimeoutError when no answer
    came in `timeout` seconds (the callable still runs to its end in the thread). Raises
    OSError at construction when the namespace cannot be entered."""

    def __init__(self, netns: str, name: str | None = None) -> None:
        super().__init__(netns, name or f"gha-{netns}")
        self.start()

    def _start_failed(self, exc: BaseException) -> BaseException:
        return exc

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._serve_one(None)

    def __call__(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        return self._call(fn, timeout)


def in_netns(netns: str, fn: Callable[[], T], timeout: float = 10.0) -> T:
    """fn() run by a new thread inside network namespace `netns` (OSError if it cannot
    enter, TimeoutError if fn takes longer than `timeout` s)."""
    worker = NetnsWorker(netns)
    try:
        return worker(fn, timeout)
    finally:
        worker.stop()

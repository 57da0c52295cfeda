"""A process stopped with SIGSTOP, for the tests of a daemon that answers nothing: kill()
returns once the signal is queued, and the group stop then reaches the process's threads one
by one; until the last one stops, one of them (Ganesha's D-Bus thread, the bus daemon's loop)
can still answer. Measured under CI's load: a ShowExports answered after kill() returned."""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from typing import Iterator


def all_threads_stopped(pid: int, within: float = 5.0) -> None:
    """Wait until every thread of `pid` is in the stopped state (T, or t under a tracer);
    AssertionError after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/stat", "rb") as fh:
                    states.append(fh.read().rpartition(b")")[2].split()[0])
            except OSError:
                continue
        if states and all(st in (b"T", b"t") for st in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"pid {pid}: not every thread stopped within {within} s")


def sigstop(pid: int) -> None:
    """SIGSTOP `pid` and return once every thread of it is stopped."""
    os.kill(pid, signal.SIGSTOP)
    all_threads_stopped(pid)


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """`pid` stopped (every thread) for the body, SIGCONT whatever happens."""
    try:
        sigstop(pid)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)

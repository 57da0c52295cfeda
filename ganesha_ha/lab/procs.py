"""Small helpers for daemons the lab starts: wait for readiness, stop by PID.

Processes are always ended by the PID we started, never by name, so a lab or a test
never touches a daemon that somebody else runs on the machine.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Send `sig` to `pid`, wait for it to go, then SIGKILL if it did not."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    if not wait_until(lambda: not pid_alive(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not pid_alive(pid), 2.0)


def stop_popen(proc: subprocess.Popen, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stop a child we started and reap it (no zombies left behind)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

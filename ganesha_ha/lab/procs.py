"""Small helpers for daemons the lab starts: wait for readiness, stop by PID.

Processes are always ended by the PID we started (and, for one that may outlive its
starter, its start time), never by name, so a lab or a test never touches a daemon that
somebody else runs on the machine. Liveness is linux.py's: a zombie counts as gone.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Callable, Iterable

from ..linux import same_process


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def end_process(pid: int, starttime: int | None, timeout: float = 10.0) -> None:
    """SIGTERM the process we started, wait, then SIGKILL; never touches a recycled PID."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if not same_process(pid, starttime):
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if wait_until(lambda: not same_process(pid, starttime), wait):
            return


def stop_popen(proc: subprocess.Popen, timeout: float = 5.0, sig: int = signal.SIGTERM) -> None:
    """Stop a child we started and reap it (no zombies left behind)."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def memory_kib(pids: Iterable[int]) -> dict[str, int]:
    """{"pss_kib", "rss_kib", "processes"} summed over `pids` (/proc/PID/smaps_rollup,
    proc(5)): PSS shares each shared page among its users, so the PSS of several nodes adds
    up to what they cost together. A process that is gone counts nothing."""
    pss = rss = n = 0
    for pid in pids:
        try:
            text = open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace").read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
        pss += int(fields.get("Pss", "0 kB").split()[0])
        rss += int(fields.get("Rss", "0 kB").split()[0])
        n += 1
    return {"pss_kib": pss, "rss_kib": rss, "processes": n}

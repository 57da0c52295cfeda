"""A ganesha.nfsd whose D-Bus thread hangs while the rest of it runs: the fault of a deadlock
in a D-Bus handler (a lock never released, a PROXY_V4 RemoveExport waiting on its back-end:
docs/research/ganesha-facts.md H), made with the real daemon and no debugger.

How: Ganesha serves D-Bus from one thread (src/dbus/dbus_server.c, gsh_dbus_thread), which
waits in poll(2) on its one bus connection (100 ms at a time) between messages; the other
threads wait in futex, epoll_wait or sigtimedwait. That thread alone is put in a cgroup-v1
freezer cgroup and frozen (v1 takes single threads in `tasks`): it sleeps in the freezer
(state D), the process is not stopped (state S: linux.is_stopped says no), the bus daemon
still names it the owner of its name, and every call to it goes unanswered, as with a
deadlock. One difference from a real deadlock: a frozen task does not die of SIGKILL until
it is thawed, so a watcher thaws it as soon as a SIGKILL is pending on it (what a deadlocked
thread would do at once: die); a SIGTERM leaves it frozen (Ganesha's shutdown, run by its
signal thread, then waits on it, as it would on a deadlocked one).
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

FREEZER = Path("/sys/fs/cgroup/freezer")
POLL_SYSCALL = 7          # x86_64 poll(2)
SIGKILL_BIT = 1 << 8      # SIGKILL (9) in /proc/.../status SigPnd


def dbus_thread(pid: int, within: float = 5.0) -> int:
    """The TID of ganesha.nfsd `pid`'s D-Bus thread: the one thread waiting in poll(2) on a
    single fd (/proc/PID/task/TID/syscall: number, fds pointer, nfds, timeout). It leaves the
    syscall for a moment every 100 ms: looked for until `within` s have passed."""
    deadline = time.monotonic() + within
    while True:
        found = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                fields = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()
            except OSError:
                continue
            if len(fields) > 3 and fields[0] == str(POLL_SYSCALL) and int(fields[2], 16) == 1:
                found.append(int(tid))
        if len(found) == 1:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"ganesha.nfsd {pid}: no single thread in poll(2) on one fd ({found})")
        time.sleep(0.01)


def _sigkill_pending(pid: int, tid: int) -> bool:
    for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
        if line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) & SIGKILL_BIT:
            return True
    return False


@contextmanager
def hung_dbus_thread(pid: int) -> Iterator[int]:
    """For the body, ganesha.nfsd `pid`'s D-Bus thread frozen (see the module); yields its
    TID. Thawed at the end, or when a SIGKILL is pending on it (the process then dies)."""
    if not (FREEZER / "tasks").exists():
        pytest.skip("no cgroup-v1 freezer at /sys/fs/cgroup/freezer")
    tid = dbus_thread(pid)
    group = FREEZER / f"gha-hang-{os.getpid()}-{tid}"
    group.mkdir()
    done = threading.Event()

    def thaw() -> None:
        try:
            (group / "freezer.state").write_text("THAWED")
        except OSError:
            pass

    def watch() -> None:   # a deadlocked thread dies of SIGKILL: a frozen one only once thawed
        while not done.wait(0.005):
            try:
                if _sigkill_pending(pid, tid):
                    thaw()
                    return
            except (OSError, ValueError):
                return

    try:
        (group / "tasks").write_text(str(tid))
        (group / "freezer.state").write_text("FROZEN")
        deadline = time.monotonic() + 5
        while (group / "freezer.state").read_text().strip() != "FROZEN":   # FREEZING until it is
            if time.monotonic() > deadline:
                raise AssertionError(f"thread {tid} of ganesha.nfsd {pid} did not freeze")
            time.sleep(0.005)
        watcher = threading.Thread(target=watch, name="gha-thaw-on-kill", daemon=True)
        watcher.start()
        yield tid
    finally:
        done.set()
        thaw()
        try:   # back to the root group, or the group cannot be removed
            (FREEZER / "tasks").write_text(str(tid))
        except OSError:   # it exited
            pass
        deadline = time.monotonic() + 5
        while True:
            try:
                group.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

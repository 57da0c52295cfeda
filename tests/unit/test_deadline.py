"""The agent action's D-Bus budget (deadline.py) and how GaneshaBus spends it, with a fake
clock and a fake connection (the edge: libdbus's call_blocking). The real daemon hung while
running: tests/server/test_instance_faults.py and test_faults.py."""
from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ganesha_ha import deadline
from ganesha_ha.backends.ganesha_bus import GaneshaBus, action_deadline, import_dbus
from ganesha_ha.deadline import Deadline, budget, timeout_from_ms
from ganesha_ha.errors import NoAnswerError, ServerUnavailableError


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("timeout, expected", [
    (20.0, 15.0),     # Pacemaker's default: a quarter kept for the rest of the action
    (60.0, 45.0),
    (4.0, 3.0),       # the reserve is at least RESERVE_MIN
    (2.0, 1.0),
    (1.0, 0.5),       # never below FLOOR
    (0.2, 0.5),
])
def test_the_budget_of_a_timeout(timeout, expected):
    assert budget(timeout) == pytest.approx(expected)


@given(st.floats(min_value=0.0, max_value=3600.0))
def test_the_budget_leaves_a_reserve_and_never_vanishes(timeout):
    b = budget(timeout)
    assert b >= deadline.FLOOR
    if timeout >= deadline.FLOOR + deadline.RESERVE_MIN:
        assert b <= timeout - deadline.RESERVE_MIN and b <= timeout * (1 - deadline.RESERVE_SHARE) + 1e-9


@pytest.mark.parametrize("raw, expected", [
    ("20000", 20.0), ("1500", 1.5), (" 4000 ", 4.0),
    (None, deadline.DEFAULT_TIMEOUT), ("", deadline.DEFAULT_TIMEOUT), ("0", deadline.DEFAULT_TIMEOUT),
    ("-5", deadline.DEFAULT_TIMEOUT), ("20s", deadline.DEFAULT_TIMEOUT), ("1e4", deadline.DEFAULT_TIMEOUT),
])
def test_pacemaker_s_timeout_in_milliseconds(raw, expected):
    assert timeout_from_ms(raw) == expected


def test_waits_shrink_to_the_deadline_and_stop_when_it_is_spent():
    clock = Clock()
    d = Deadline(20.0, clock=clock)            # budget 15 s from 100
    assert d.left() == 15.0 and d.wait(8.0) == 8.0
    clock.now = 110.0
    assert d.wait(8.0) == 5.0
    clock.now = 114.9
    assert d.wait(8.0) == pytest.approx(0.1)
    clock.now = 114.97
    assert d.wait(8.0) is None                 # 0.03 s left: not worth a call
    assert d.wait(0.01) == 0.01                # unless the call wants no more
    clock.now = 130.0
    assert d.left() == 0.0 and d.wait(8.0) is None


def test_the_waits_after_the_budget_end_before_the_timeout():
    clock = Clock()
    d = Deadline(20.0, start=100.0, clock=clock)
    clock.now = 115.0                          # the budget is spent: a SIGTERM's grace, a SIGKILL's wait
    assert d.last_wait(2.0) == 2.0
    clock.now = 118.0
    assert d.last_wait(5.0) == pytest.approx(20.0 - deadline.ANSWER - 18.0)
    clock.now = 125.0
    assert d.last_wait(5.0) == 0.0


def test_the_agent_s_settings_make_the_deadline():
    import time

    assert action_deadline({"dbus_timeout": 10}) is None          # the CLI: no deadline
    before = time.monotonic()
    d = action_deadline({"action_timeout_ms": "8000"}, age=0.5)   # counted from the process's fork
    assert d is not None and (d.timeout, d.budget) == (8.0, 6.0)
    assert before - 0.5 <= d.start <= time.monotonic() - 0.5
    d = action_deadline({"action_timeout_ms": ""}, age=0.0)       # run by hand
    assert d is not None and d.timeout == deadline.DEFAULT_TIMEOUT
    d = action_deadline({"action_timeout_ms": "4000"}, age=3600.0)   # never more than spent
    assert d is not None and d.left() == 0.0


# ---- GaneshaBus with a fake connection ---------------------------------------------------------

class FakeConn:
    """libdbus's connection: records each call's timeout; Ganesha answers or never does."""

    def __init__(self, clock: Clock, hung: bool = False, takes: float = 0.0):
        self.clock, self.hung, self.takes = clock, hung, takes
        self.calls: list[tuple[str, float]] = []

    def call_blocking(self, bus_name, path, iface, method, signature, args, timeout):
        self.calls.append((method, timeout))
        if self.hung:
            self.clock.now += timeout
            raise import_dbus().DBusException("Did not receive a reply", name="org.freedesktop.DBus.Error.NoReply")
        self.clock.now += self.takes
        return 4242 if method == "GetConnectionUnixProcessID" else (0, [])

    def close(self):
        pass


def bus(clock: Clock, conn: FakeConn, timeout: float = 10.0, with_deadline: bool = True) -> GaneshaBus:
    b = GaneshaBus("unix:path=/nonexistent", "", timeout, Deadline(20.0, clock=clock) if with_deadline else None)
    b._conn = conn
    b.hint = "hung?"
    return b


def test_each_call_waits_the_lesser_of_dbus_timeout_and_what_is_left():
    clock = Clock()
    conn = FakeConn(clock, takes=6.0)          # slow, but it answers
    b = bus(clock, conn)
    for _ in range(3):
        b.call("/p", "i", "ShowExports")
    assert [t for _, t in conn.calls] == [10.0, 9.0, 3.0]   # 15 s budget: 0, 6, 12 s spent before each
    with pytest.raises(NoAnswerError, match=r"no time left for ShowExports \(the action's D-Bus budget of 15 s"):
        b.call("/p", "i", "ShowExports")
    assert len(conn.calls) == 3                # the fourth was never sent


def test_a_call_left_unanswered_names_who_and_how_long_and_is_not_waited_for_again():
    clock = Clock()
    conn = FakeConn(clock, hung=True)
    b = bus(clock, conn, timeout=10.0)
    b.owner = 4242                             # as the bus daemon named it (owner_pid) before
    with pytest.raises(NoAnswerError) as first:
        b.call("/p", "i", "ShowExports")
    assert str(first.value) == "ganesha.nfsd (pid 4242) did not answer D-Bus ShowExports within 10 s: hung?"
    assert clock.now == 110.0
    with pytest.raises(NoAnswerError) as again:   # the rest of the action is not spent waiting again
        b.call("/p", "i", "DisplayExport")
    assert again.value is first.value and clock.now == 110.0 and len(conn.calls) == 1
    with pytest.raises(NoAnswerError):
        b.owner_pid()
    assert isinstance(first.value, ServerUnavailableError)   # the agent's generic error, the CLI's exit 6


def test_without_a_deadline_every_call_waits_its_own_timeout():
    """The CLI: no action deadline; a call that timed out does not fail the next one at once."""
    clock = Clock()
    conn = FakeConn(clock, hung=True)
    b = bus(clock, conn, timeout=10.0, with_deadline=False)
    for _ in range(2):
        with pytest.raises(NoAnswerError, match="NFS-Ganesha did not answer D-Bus ShowExports within 10 s"):
            b.call("/p", "i", "ShowExports")
    assert [t for _, t in conn.calls] == [10.0, 10.0]


def test_a_call_s_own_longer_timeout_is_cut_by_the_deadline():
    """A RemoveExport that may block Ganesha longer on purpose (PROXY_V4: dbus_timeout +
    RPC_Client_Timeout) still ends by the deadline."""
    clock = Clock()
    conn = FakeConn(clock, hung=True)
    b = bus(clock, conn, timeout=10.0)
    clock.now = 104.0
    with pytest.raises(NoAnswerError, match="did not answer D-Bus RemoveExport within 11 s"):
        b.call("/p", "i", "RemoveExport", timeout=70.0)
    assert conn.calls == [("RemoveExport", 11.0)]


def test_an_action_s_clock_starts_at_its_process_s_fork():
    """The agent counts its budget from its process's start (Pacemaker's timer starts at the
    fork; an exec keeps the start time), the interpreter's start-up included."""
    import subprocess
    import time

    from ganesha_ha import linux

    before = time.monotonic()
    proc = subprocess.Popen(["sleep", "30"])
    try:
        time.sleep(0.3)
        age = linux.process_age(proc.pid)
        elapsed = time.monotonic() - before
        tick = 1 / os.sysconf("SC_CLK_TCK")
        assert age is not None and 0.3 - tick <= age <= elapsed + tick, (age, elapsed)
    finally:
        proc.kill()
        proc.wait()
    assert linux.process_age(proc.pid) is None

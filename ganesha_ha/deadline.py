"""An agent action's deadline for its waits on the server, from Pacemaker's timeout for it.

Pacemaker kills an action that outlives its timeout (OCF_RESKEY_CRM_meta_timeout, in ms): a
monitor is then only "Timed Out" in crm_mon, a stop gets the node fenced, neither with a
reason. A ganesha.nfsd that hangs while running (a deadlock in a D-Bus handler, a PROXY_V4
RemoveExport waiting on its back-end: docs/research/ganesha-facts.md H) answers no call, and
an action makes several; each bounded by `dbus_timeout` alone, they could add up past the
timeout. So every D-Bus wait of an action (opening the connection, each call) ends by one
deadline: `budget(timeout)` seconds after the action began, which leaves a reserve for what
follows the last wait (the answer and its log line; for a volume's own Ganesha, ending it by
its PID: `Deadline.last_wait`). The `dbus_timeout` setting stays the bound of each call.

Pure arithmetic over a clock given to it (tests/unit/test_deadline.py fakes one).
"""
from __future__ import annotations

import time

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_TIMEOUT = 20.0  # s: Pacemaker's default-action-timeout, for an action run without CRM_meta_timeout
RESERVE_SHARE = 0.25    # of the timeout, kept after the last D-Bus wait ...
RESERVE_MIN = 1.0       # s ... and at least this: the interpreter's start-up before the clock started, the answer
FLOOR = 0.5             # s: the least budget, whatever the timeout (the bound `dbus_timeout` itself has)
ANSWER = 0.5            # s: kept at the very end, for the answer, by the waits after the budget (last_wait)
SPENT = 0.05            # s: a call given less than this is not sent: the budget is spent


def budget(timeout: float) -> float:
    """Seconds from an action's start within which its D-Bus waits end, for an action of
    `timeout` seconds: the timeout less max(RESERVE_MIN, RESERVE_SHARE × timeout), at least
    FLOOR. 20 s (Pacemaker's default) gives 15 s; 4 s gives 3 s; 1 s gives 0.5 s."""
    return max(FLOOR, timeout - max(RESERVE_MIN, RESERVE_SHARE * timeout))


def timeout_from_ms(raw: str | None, default: float = DEFAULT_TIMEOUT) -> float:
    """An action's timeout in seconds from Pacemaker's CRM_meta_timeout (milliseconds, a
    decimal integer); `default` when it is absent, empty, not a number or not positive."""
    try:
        ms = int((raw or "").strip() or 0)
    except ValueError:
        ms = 0
    return ms / 1000.0 if ms > 0 else default


class Deadline:
    """The D-Bus deadline of one action of `timeout` seconds that began at `start` (the
    clock's reading; now when None)."""

    def __init__(self, timeout: float, start: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.timeout = float(timeout)
        self.budget = budget(self.timeout)
        self._clock = clock
        self.start = clock() if start is None else float(start)

    def left(self) -> float:
        """Seconds left of the budget now (0 when it is spent)."""
        return max(0.0, self.start + self.budget - self._clock())

    def wait(self, wanted: float) -> float | None:
        """How long a D-Bus wait that wants `wanted` s may take now: the lesser of the two;
        None when that is not worth starting (less than SPENT s: the budget is spent)."""
        allowed = min(float(wanted), self.left())
        return None if allowed < min(SPENT, float(wanted)) else allowed

    def last_wait(self, wanted: float, keep: float = 0.0) -> float:
        """How long a wait after the D-Bus ones (a SIGTERM's grace, a SIGKILL's) may take now:
        at most `wanted`, ending `keep` s (for a wait still to come) plus ANSWER s before the
        action's timeout; 0 when that is past."""
        return max(0.0, min(float(wanted), self.start + self.timeout - ANSWER - keep - self._clock()))

    def describe(self) -> str:
        """The budget in words, for an exit reason."""
        return f"the action's D-Bus budget of {self.budget:g} s (its timeout {self.timeout:g} s)"

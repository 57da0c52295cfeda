"""The D-Bus transport to one ganesha.nfsd: connect, call with a timeout, map bus errors.

Nothing here knows what an export is: ganesha.py decides what to call, this module makes
each call end in time with an answer or a ganesha-ha error. Facts it relies on (libdbus and
dbus-python as in Debian 12):
- libdbus bounds no part of opening a connection (authentication, Hello): a bus daemon that
  is stopped or stuck would hang the caller until Pacemaker kills it, so the connection is
  opened in a thread that is given the timeout and abandoned if it never finishes.
- `conn.name_has_owner()` waits libdbus's default 25 s: NameHasOwner is called through
  call_blocking with our timeout instead.
- A method call that gets no answer in time fails with org.freedesktop.DBus.Error.NoReply
  (or .Timeout); a name nobody owns with .ServiceUnknown / .NameHasNoOwner; a dropped
  connection with .Disconnected.

In the agent, every wait also ends by the action's deadline (deadline.py: a budget from
Pacemaker's timeout, `dbus_timeout` staying the bound of each call), and once Ganesha or the
bus did not answer, the rest of the action is not spent waiting again: each later call fails
at once with the same NoAnswerError. Without a deadline (the CLI) each call waits its own
timeout, as before.
"""
from __future__ import annotations

import os

from ..errors import NoAnswerError, NotInstalledError, ServerUnavailableError

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from ..deadline import Deadline

BUS_NAME = "org.ganesha.nfsd"
EXPORT_MGR_PATH = "/org/ganesha/nfsd/ExportMgr"
EXPORT_MGR_IFACE = "org.ganesha.nfsd.exportmgr"
_NO_ANSWER = ("org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout")
_NO_OWNER = ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
             "org.freedesktop.DBus.Error.Disconnected")


WINDOW = 96   # calls on the way at once in call_each: the bus allows 128 pending replies per connection
              # by default, and a start may have two AddExports and a nested batch's on the way
              # meanwhile (ganesha_changes.py); Ganesha answers ~30 µs each, so a window this size
              # keeps it busy across a few ms of this process waiting for the CPU on a loaded node


class BusUnreachable(ServerUnavailableError):
    """No bus at the address (no socket, connection refused): not a bus that is slow."""


def import_dbus() -> Any:
    """dbus-python, or NotInstalledError (it lives in site-packages: see lazysite.py)."""
    from ..lazysite import enable

    enable()
    try:
        import dbus
    except ImportError:
        raise NotInstalledError("dbus-python is not installed for this interpreter") from None
    return dbus


def action_deadline(settings: dict[str, Any], age: float | None = None) -> Deadline | None:
    """The agent's action deadline (deadline.py): a budget of the action's timeout, the
    `action_timeout_ms` the agent put in the [ganesha] settings (Pacemaker's CRM_meta_timeout,
    empty when absent: Pacemaker's default then), counted from the fork of this process, where
    Pacemaker's timer starts (`age`: its age in seconds, read from /proc when None). None
    outside the agent (the CLI)."""
    if "action_timeout_ms" not in settings:
        return None
    import time

    from .. import linux
    from ..deadline import Deadline, timeout_from_ms

    timeout = timeout_from_ms(settings["action_timeout_ms"])
    if age is None:
        age = linux.process_age(os.getpid()) or 0.0
    return Deadline(timeout, time.monotonic() - min(max(age, 0.0), timeout))


def secs(value: float) -> str:
    """Seconds for a message: 7.6, 15, 0.5 (a deadline leaves fractions nobody needs)."""
    return f"{round(value, 1):g}"


class GaneshaBus:
    """One connection to the bus Ganesha is on, opened on first use; `deadline` (the agent's
    action) bounds every wait besides `timeout`."""

    def __init__(self, address: str, name_prefix: str, timeout: float, deadline: Deadline | None = None):
        self.address = address or os.environ.get("DBUS_SYSTEM_BUS_ADDRESS") or ""
        self.bus_name = f"{name_prefix}.{BUS_NAME}" if name_prefix else BUS_NAME
        self.timeout = timeout   # seconds, for connecting and for each call
        self.deadline = deadline
        self.owner: int | None = None   # the PID owner_pid last found owning the name
        self._conn: Any = None
        self._silent: NoAnswerError | None = None   # what did not answer in this action (with a deadline)
        # who answers on this name, for an error line: a volume's own instance names itself and its PID
        self.who: Callable[[], str] = lambda: f"ganesha.nfsd (pid {self.owner})" if self.owner else "NFS-Ganesha"
        self.hint = ""   # what a call Ganesha left unanswered means, after the reason (the backend's)

    def where(self) -> str:
        return self.address or "the system bus"

    def not_running(self) -> ServerUnavailableError:
        return ServerUnavailableError(f"NFS-Ganesha is not running on this node ({self.bus_name} "
                                      f"has no owner on {self.where()})")

    def _bounded(self, what: str, wanted: float) -> float:
        """How long a wait for `what` may take: `wanted` s, less when the deadline is nearer.
        NoAnswerError at once when the bus or Ganesha already did not answer in this action,
        or when the deadline leaves no time."""
        if self._silent is not None:
            raise self._silent
        if self.deadline is None:
            return wanted
        allowed = self.deadline.wait(wanted)
        if allowed is None:
            raise self._stuck(NoAnswerError(f"no time left for {what} ({self.deadline.describe()} is spent)"))
        return allowed

    def _stuck(self, exc: NoAnswerError) -> NoAnswerError:
        """`exc`, remembered for the rest of the action when there is a deadline."""
        if self.deadline is not None:
            self._silent = exc
        return exc

    def connect(self) -> Any:
        """The open connection; NoAnswerError when the bus does not answer in `timeout` s
        (or by the deadline), BusUnreachable when there is no bus at the address."""
        if self._conn is not None:
            return self._conn
        wait = self._bounded("connecting to D-Bus", self.timeout)
        dbus = import_dbus()
        import threading

        box: dict[str, Any] = {}

        def connect() -> None:
            try:
                box["conn"] = dbus.bus.BusConnection(self.address or dbus.bus.BUS_SYSTEM)
            except dbus.DBusException as exc:
                box["error"] = exc

        worker = threading.Thread(target=connect, name="gha-dbus-connect", daemon=True)
        worker.start()
        worker.join(wait)
        if worker.is_alive():  # abandoned: a daemon thread blocked in C with the GIL released
            raise self._stuck(NoAnswerError(f"D-Bus at {self.where()} did not answer within "
                                            f"{secs(wait)} s (connection not completed)"))
        if "error" in box:
            exc = box["error"]
            raise BusUnreachable(f"cannot reach D-Bus at {self.where()}: "
                                 f"{exc.get_dbus_message() or exc}") from None
        self._conn = box["conn"]
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a dead connection must never mask the real error
                pass
            self._conn = None

    def _ask_bus(self, method: str, no_owner: Any) -> Any:
        """The bus daemon's answer to `method` (NameHasOwner, GetConnectionUnixProcessID) about
        Ganesha's name, `no_owner` when the bus says nobody owns it; ServerUnavailableError
        when the bus is slow or does not answer."""
        dbus = import_dbus()
        conn = self.connect()
        wait = self._bounded(method, self.timeout)
        try:
            return conn.call_blocking("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                      method, "s", (self.bus_name,), timeout=wait)
        except dbus.DBusException as exc:
            name = exc.get_dbus_name() or ""
            if name in _NO_OWNER[:2]:    # ServiceUnknown, NameHasNoOwner
                return no_owner
            self.close()
            if name in _NO_ANSWER:
                raise self._stuck(NoAnswerError(f"D-Bus at {self.where()} did not answer within "
                                                f"{secs(wait)} s")) from None
            raise ServerUnavailableError(f"D-Bus at {self.where()} did not answer: {exc.get_dbus_message()}") from None

    def name_owned(self) -> bool:
        """Does anyone own Ganesha's bus name? ServerUnavailableError when the bus is slow.
        Asked as its owner's PID (one call, as NameHasOwner), kept for error lines."""
        return self.owner_pid() is not None

    def fall_back(self, recorded: str, name_prefix: str) -> tuple[GaneshaBus, str] | None:
        """A bus at `recorded` for Ganesha's name under `name_prefix` (this one's timeout,
        deadline and hint), with why it is used, when this one is not there at all (no socket,
        refused: BusUnreachable) and Ganesha owns that name at `recorded`; None otherwise (also
        for a `recorded` that is empty or this address). A bus here that answers wins; one that
        is slow raises ServerUnavailableError, as any call does. The caller closes this one."""
        if not recorded or recorded == self.address:
            return None
        try:
            self.name_owned()
            return None
        except BusUnreachable as exc:
            unreachable = str(exc)
        other = GaneshaBus(recorded, name_prefix, self.timeout, self.deadline)
        other.hint = self.hint
        try:
            if not other.name_owned():
                other.close()
                return None
        except ServerUnavailableError:
            other.close()
            return None
        return other, unreachable

    def owner_pid(self) -> int | None:
        """The PID of the process owning Ganesha's bus name, None when nobody does (one call,
        as NameHasOwner). ServerUnavailableError when the bus is slow or unreachable."""
        pid = self._ask_bus("GetConnectionUnixProcessID", None)
        self.owner = None if pid is None else int(pid)
        return self.owner

    def call(self, path: str, iface: str, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Ganesha's answer to one method call, waiting `timeout` s (default: the bus's). A
        call that is not answered in time or that finds nobody there raises
        ServerUnavailableError; Ganesha's own refusals come back as dbus.DBusException for the
        caller to word."""
        dbus = import_dbus()
        conn = self.connect()
        wait = self._bounded(method, self.timeout if timeout is None else timeout)
        try:
            # straight to the connection: a proxy object (get_object) asks the bus daemon for the
            # name's owner first, one more round trip per call (half the cost of a DisplayExport)
            return conn.call_blocking(self.bus_name, path, iface, method, None, args, timeout=wait)
        except dbus.DBusException as exc:
            raise self._unanswered(method, exc, wait) or exc from None

    def _unanswered(self, method: str, exc: Any, wait: float) -> ServerUnavailableError | None:
        """The error for a call nobody answered (in time), or None for Ganesha's own refusal."""
        name = exc.get_dbus_name() or ""
        if name in _NO_ANSWER:
            return self._stuck(NoAnswerError(f"{self.who()} did not answer D-Bus {method} within {secs(wait)} s"
                                             + (f": {self.hint}" if self.hint else "")))
        if name in _NO_OWNER:
            self.close()
            return self.not_running()
        return None

    def call_each(self, path: str, iface: str, method: str, args: list[tuple[Any, ...]]) -> list[Any]:
        """One call of `method` per argument tuple, up to WINDOW of them on the way at a time
        (Ganesha answers them in turn: a monitor of 100 exports waits for a few round trips, not
        100; the system bus refuses more than max_replies_per_connection pending replies, 128 by
        default, "The maximum number of pending replies per connection has been reached").
        Returns, in order, each answer or the dbus.DBusException Ganesha answered with; raises
        ServerUnavailableError as `call` does. Each call ends within `timeout` s of being sent."""
        if not args:
            return []
        sent = Sent(self, method, self.timeout)
        send = self._sender(path, iface, method, sent)
        for one in args[:WINDOW]:
            send(one)
        for i in range(WINDOW, len(args)):   # one more on its way as each answer comes
            sent.wait_for(i - WINDOW)
            send(args[i])
        return sent.wait()

    def send(self, path: str, iface: str, method: str, args: list[tuple[Any, ...]],
             timeout: float | None = None) -> Sent:
        """One call of `method` per argument tuple, all sent now, the answers read later
        (`Sent.wait`): Ganesha handles the calls of a connection one at a time, in the order
        sent, so what this process does meanwhile costs no time of Ganesha's, and calls sent
        after these are answered after them. The caller keeps the calls on the way below the
        bus's max_replies_per_connection (128 by default). Each call ends within `timeout` s
        (default: the bus's) of being sent. Raises ServerUnavailableError when the bus cannot
        be reached."""
        sent = Sent(self, method, self.timeout if timeout is None else timeout)
        send = self._sender(path, iface, method, sent)
        for one in args:
            send(one)
        return sent

    def _sender(self, path: str, iface: str, method: str, sent: Sent) -> Any:
        """A function that sends one call of `method` with the given arguments, its answer to `sent`."""
        dbus = import_dbus()
        from dbus.lowlevel import MethodCallMessage

        conn = self.connect()

        def send(args: tuple[Any, ...]) -> None:
            msg = MethodCallMessage(self.bus_name, path, iface, method)
            if args:
                msg.append(*args)
            try:
                wait = self._bounded(method, sent.timeout)
            except NoAnswerError:
                sent.cancel()
                raise
            try:
                sent.pending.append(conn.send_message_with_reply(msg, sent.handler(wait), wait,
                                                                 require_main_loop=False))
            except dbus.DBusException as exc:
                sent.cancel()
                raise self._unanswered(method, exc, wait) or ServerUnavailableError(
                    f"cannot send {method} to NFS-Ganesha: {exc.get_dbus_message() or exc}") from None
        return send


class Sent:
    """Calls sent by GaneshaBus.send whose answers are still to be read."""

    def __init__(self, bus: GaneshaBus, method: str, timeout: float):
        from dbus.lowlevel import ErrorMessage

        self.bus, self.method, self.timeout = bus, method, timeout
        self._dbus, self._error_message = import_dbus(), ErrorMessage
        self.replies: list[Any] = []
        self.pending: list[Any] = []
        self.waits: list[float] = []    # each call's own timeout (the deadline may shorten the later ones)
        self._answers: list[Any] = []   # answers read so far, in order

    def handler(self, wait: float) -> Any:
        i = len(self.replies)
        self.replies.append(None)
        self.waits.append(wait)
        return lambda reply: self.replies.__setitem__(i, reply)

    def wait_for(self, last: int) -> None:
        """Read the answers up to the `last`-th call (0-based) sent; as `wait`."""
        dbus = self._dbus
        for i in range(len(self._answers), last + 1):
            self.pending[i].block()
            reply = self.replies[i]
            self.replies[i] = None
            if reply is None or isinstance(reply, self._error_message):
                name = reply.get_error_name() if reply is not None else "org.freedesktop.DBus.Error.NoReply"
                exc = dbus.DBusException(*(reply.get_args_list() if reply is not None else []), name=name)
                unanswered = self.bus._unanswered(self.method, exc, self.waits[i])
                if unanswered is not None:
                    self.cancel()
                    raise unanswered
                self._answers.append(exc)
                continue
            values = reply.get_args_list()
            self._answers.append(values[0] if len(values) == 1 else tuple(values) if values else None)

    def wait(self) -> list[Any]:
        """Each answer, in the order sent: the reply's value (a tuple when it has several), or
        the dbus.DBusException Ganesha answered with. Raises ServerUnavailableError for a call
        nobody answered in time or that found nobody there (the calls still on the way are
        dropped then)."""
        self.wait_for(len(self.pending) - 1)
        return self._answers

    def cancel(self) -> None:
        """Drop the answers still to come (their calls may still be carried out)."""
        for pending in self.pending[len(self._answers):]:
            pending.cancel()

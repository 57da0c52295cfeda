"""The NFSv3 client's own NSM: receive SM_NOTIFY over UDP and have the locks reclaimed.

What Debian 12's sm-notify (nfs-utils 2.6.2, utils/statd/sm-notify.c) sends, measured: from
the address given with `-v` and a reserved port, over **UDP only**, first PMAP_GETPORT
(100000 v2 proc 3) for (SM_PROG 100024, v1, udp) to the client's port 111, then SM_NOTIFY
(100024 v1 proc 6, `stat_chge{mon_name, state}`) to the port it was told, once with the
server's fully qualified name and once with the short one; the record of a host is deleted
once that host answered. So a client needs something on UDP 111 that answers GETPORT, and
an SM service. `NsmListener` is both, with no rpcbind: two UDP sockets on the client's
address, answered by one thread. (A real rpcbind in the client's namespace would do for
port 111 too, but it is one more daemon to start and stop by PID, and nothing else on the
client needs it: the client's own calls go to the *server's* rpcbind.)

Which server rebooted: sm-notify names it (`mon_name`, which the client may be unable to
resolve) and sends from its address, the floating IP with `-v <ip>`. The listener reports
both; `NlmClient.reclaim_all` wants addresses, so `servers_of()` gives the sender's address
plus whatever the name resolves to here.

The thread inherits the network namespace of the thread that calls `start()` (a new
thread gets its creator's), so the reclaims run by `on_notify` leave from the client's
namespace too.
"""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from . import nfs3, nlm4
from .rpc import PROC_UNAVAIL, PROG_MISMATCH, PROG_UNAVAIL, decode_call, encode_reply
from .xdr import Packer, XdrError

PMAPPROC_NULL = 0


@dataclass(frozen=True)
class Notification:
    """One SM_NOTIFY received: when (time.monotonic()), from which address, what it said."""

    t: float
    source: str
    mon_name: str
    state: int


def servers_of(note: Notification) -> set[str]:
    """The addresses of the server a notification is about: its source address, and the
    addresses `mon_name` resolves to here (none if it does not resolve)."""
    out = {note.source}
    try:
        out |= {ai[4][0] for ai in socket.getaddrinfo(note.mon_name, None, type=socket.SOCK_DGRAM)}
    except (OSError, UnicodeError):
        pass
    return out


def answer_pmap(data: bytes, sm_port: int) -> bytes | None:
    """The reply to one datagram on port 111 (PMAP v2 NULL and GETPORT; GETPORT answers
    `sm_port` for SM_PROG v1 over UDP and 0 for anything else), None for a non-call. Pure."""
    try:
        call = decode_call(data)
    except XdrError:
        return None
    if call.prog != nfs3.PMAP_PROGRAM:
        return encode_reply(call.xid, accept_stat=PROG_UNAVAIL)
    if call.vers != nfs3.PMAP_V2:
        return encode_reply(call.xid, accept_stat=PROG_MISMATCH, versions=(2, 2))
    if call.proc == PMAPPROC_NULL:
        return encode_reply(call.xid)
    if call.proc != nfs3.PMAPPROC_GETPORT:
        return encode_reply(call.xid, accept_stat=PROC_UNAVAIL)
    try:
        prog, vers, proto = call.args.u32(), call.args.u32(), call.args.u32()
    except XdrError:
        return None
    ours = (prog, vers, proto) == (nlm4.SM_PROGRAM, nlm4.SM_V1, nfs3.IPPROTO_UDP)
    p = Packer()
    p.u32(sm_port if ours else 0)
    return encode_reply(call.xid, p.bytes())


def answer_sm(data: bytes) -> tuple[bytes | None, nlm4.StatChge | None]:
    """The reply to one datagram on the SM port, and the SM_NOTIFY it carried if any. Pure."""
    try:
        call = decode_call(data)
    except XdrError:
        return None, None
    if call.prog != nlm4.SM_PROGRAM:
        return encode_reply(call.xid, accept_stat=PROG_UNAVAIL), None
    if call.vers != nlm4.SM_V1:
        return encode_reply(call.xid, accept_stat=PROG_MISMATCH, versions=(1, 1)), None
    if call.proc == 0:
        return encode_reply(call.xid), None
    if call.proc != nlm4.SM_NOTIFY:
        return encode_reply(call.xid, accept_stat=PROC_UNAVAIL), None
    try:
        note = nlm4.StatChge.unpack(call.args)
    except XdrError:
        return None, None
    return encode_reply(call.xid), note


@dataclass
class NsmListener:
    """UDP `addr`:111 (GETPORT) and `addr`:`sm_port` (SM; 0 = any free port), one thread.

    `on_notify(note)` runs in that thread after the reply went out, once per server reboot
    (the short-name repeat of a notification, same source and state, is only recorded).
    What it raises is kept in `errors`, and the listener goes on.
    """

    addr: str
    on_notify: Callable[[Notification], object] | None = None
    sm_port: int = 0
    notifications: list[Notification] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    handled: int = 0

    def __post_init__(self) -> None:
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[tuple[str, int]] = set()
        self._cond = threading.Condition()

    def start(self) -> "NsmListener":
        family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        try:
            pm = socket.socket(family, socket.SOCK_DGRAM)
            self._socks.append(pm)
            pm.bind((self.addr, 111))
            sm = socket.socket(family, socket.SOCK_DGRAM)
            self._socks.append(sm)
            sm.bind((self.addr, self.sm_port))
        except OSError:
            self.stop()
            raise
        self.sm_port = sm.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"gha-nsm-{self.addr}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for s in self._socks:
            s.close()
        self._socks = []

    def __enter__(self) -> "NsmListener":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait(self, handled: int = 1, timeout: float = 10.0) -> bool:
        """Until `handled` notifications went through `on_notify` (True), or `timeout` s."""
        with self._cond:
            return self._cond.wait_for(lambda: self.handled >= handled, timeout)

    def _run(self) -> None:
        pm, sm = self._socks
        while not self._stop.is_set():
            ready, _, _ = select.select([pm, sm], [], [], 0.2)
            for s in ready:
                try:
                    data, src = s.recvfrom(65536)
                except OSError:
                    continue
                if s is pm:
                    reply = answer_pmap(data, self.sm_port)
                    if reply is not None:
                        s.sendto(reply, src)
                    continue
                reply, stat = answer_sm(data)
                if reply is not None:
                    s.sendto(reply, src)
                if stat is not None:
                    self._notified(Notification(time.monotonic(), src[0], stat.mon_name, stat.state))

    def _notified(self, note: Notification) -> None:
        self.notifications.append(note)
        key = (note.source, note.state)
        if key in self._seen:
            return
        self._seen.add(key)
        try:
            if self.on_notify is not None:
                self.on_notify(note)
        except Exception as exc:  # kept for the test or the lab to report
            self.errors.append(f"{type(exc).__name__}: {exc}")
        with self._cond:
            self.handled += 1
            self._cond.notify_all()

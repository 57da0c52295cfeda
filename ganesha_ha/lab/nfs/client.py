"""The lab's NFSv4 client, minor version 0 (RFC 7530) or 1 (RFC 8881): one client identity,
its opens, and what it does across a failover. Transport in rpc.py, the protocol's
encoding in nfs4.py (and nfs41.py for sessions).

The identity (`client_name` and the boot verifier chosen here) stays the same across
`connect()`/`establish()` calls, so after a failover the new server sees the same client,
finds it in its recovery records and lets it reclaim during grace.

Minor version 0: SETCLIENTID/SETCLIENTID_CONFIRM; open-owner seqids advance as RFC 7530
9.1.7 says, so a retry after an error sends the seqid the server expects.

Minor version 1: EXCHANGE_ID + CREATE_SESSION, then every compound starts with SEQUENCE
on slot 0 (nfs41.Slot keeps its sequence id right, also after a lost reply). Like a real
client's state manager, a compound whose SEQUENCE is refused because the session is gone
(NFS4ERR_BADSESSION after a server restart or move, NFS4ERR_EXPIRED, ...) re-establishes
and is sent once more: the saved handle then reads on the new server at once. Opens are
*not* reclaimed behind the caller's back: `reclaim()` (CLAIM_PREVIOUS) and then
`reclaim_complete()` are the lab's to call, and `reclaim()` refuses, as RFC 8881 2.10.4
says a client must, when the new server presents a different server scope than the one
that granted the open. Open seqids are ignored by a 4.1 server and sent as 0; there is no
OPEN_CONFIRM. Not thread-safe.
"""
from __future__ import annotations

import itertools
import os
import struct
import time
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

from . import nfs4, nfs41
from .nfs4 import (ANONYMOUS_STATEID, NFS4ERR_COMPLETE_ALREADY, NFS4ERR_NAMES,
                   NFS4ERR_SEQ_MISORDERED, NFS4ERR_STALE, OPEN4_RESULT_CONFIRM, REESTABLISH_STATUSES,
                   RETRY_STATUSES, SEQID_KEPT_ON, SESSION_LOST_STATUSES, SHARE_ACCESS_BOTH,
                   SHARE_ACCESS_READ, NfsError, Op)
from .nfs41 import ExchangeIdResult, Session
from .rpc import RpcConnection, RpcError, auth_sys
from .xdr import XdrError

__all__ = ["NfsError", "RpcError", "ScopeMismatch", "OpenFile", "Nfs4Client", "ANONYMOUS_STATEID",
           "NFS4ERR_NAMES", "NFS4ERR_STALE"]

T = TypeVar("T")


@dataclass
class OpenFile:
    """An open file: what a client must keep to write, close or reclaim after a failover.

    `fh` is the raw file handle (opaque bytes, replayed verbatim with PUTFH), `stateid` the
    16-byte open stateid, `owner` the open-owner name and `seqid` the next seqid to send for
    that owner. `seqid` is mutable because NFSv4.0 open-owner seqids advance with every
    OPEN/OPEN_CONFIRM/CLOSE the server sees, including failed ones.
    """

    path: str
    fh: bytes
    stateid: bytes
    owner: bytes
    seqid: int
    access: int
    confirmed: bool = True
    server_scope: bytes | None = None   # 4.1: the scope of the server that granted it


class ScopeMismatch(Exception):
    """The server now presents a different server scope than the one that granted an open,
    so the open must not be reclaimed there (RFC 8881 2.10.4; the Linux client logs
    "server scope mismatch" and starts afresh). Raised by the client, not by the server."""

    def __init__(self, granted_by: bytes, now: bytes) -> None:
        self.granted_by = granted_by
        self.now = now
        super().__init__(f"server scope changed from {granted_by!r} to {now!r}: "
                         "the open cannot be reclaimed here")


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


class Nfs4Client:
    """One NFSv4 client identity (minor version 0 or 1) talking to one server address over TCP.

    4.1 state, for the lab to report: `server` (the last EXCHANGE_ID result: server owner
    and scope as received), `session`, `reclaim_completed` (this client id sent
    RECLAIM_COMPLETE, or the server kept it from before), `recoveries` (one line per
    session the client had to re-establish by itself, and why).
    """

    def __init__(self, host: str, port: int = 2049, *, client_name: str = "gha-lab-client",
                 uid: int = 0, gid: int = 0, timeout: float = 5.0,
                 source_addr: str | None = None, minorversion: int = 0,
                 check_scope: bool = True) -> None:
        if minorversion not in (0, 1):
            raise ValueError(f"NFSv4 minor version {minorversion} is not supported (0 or 1)")
        self.client_name = client_name
        self.minorversion = minorversion
        self.check_scope = check_scope
        self.rpc = RpcConnection(host, port, nfs4.NFS_PROGRAM, nfs4.NFS_V4, cred=auth_sys(uid, gid),
                                 timeout=timeout, source_addr=source_addr)
        # Boot verifier: fixed for this object's life ("the same client instance"); a new
        # object is a rebooted client and makes the server drop the old one's state.
        self.verifier = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + os.urandom(4)
        self.clientid: int | None = None
        self._owner_seq = itertools.count(1)
        self.server: ExchangeIdResult | None = None
        self.session: Session | None = None
        self.reclaim_completed = False
        self.recoveries: list[str] = []
        self._cs_seq = 0   # csa_sequence of the next CREATE_SESSION

    # ---- connection -------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.rpc.host

    @property
    def port(self) -> int:
        return self.rpc.port

    @property
    def timeout(self) -> float:
        return self.rpc.timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        """Seconds a connect or a reply may take; applies to the open connection too."""
        self.rpc.timeout = seconds

    @property
    def connected(self) -> bool:
        return self.rpc.connected

    def connect(self) -> None:
        """Open the TCP connection (closing any old one): also how to reach a restarted server."""
        self.rpc.connect()

    def close(self) -> None:
        """Drop the TCP connection; client id and open state are kept for a reconnect."""
        self.rpc.close()

    def __enter__(self) -> "Nfs4Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, ops: list[Op]) -> list[object]:
        """Run one COMPOUND as it is; each op's decoded result, or NfsError naming the first
        op that failed (and its index); RpcError for a reply that does not decode."""
        u = self.rpc.call(nfs4.NFSPROC4_COMPOUND, nfs4.encode_compound(ops, self.minorversion))
        try:
            return nfs4.decode_compound(u, ops)
        except XdrError as exc:
            raise RpcError(str(exc)) from None

    def _compound(self, ops: list[Op]) -> list[object]:
        """Run a COMPOUND: as it is for 4.0; for 4.1 behind SEQUENCE on the session (made
        first if there is none), the results without SEQUENCE's, NfsError indexes
        counted without it too. A session the server no longer has is re-established once."""
        if self.minorversion == 0:
            return self._send(ops)
        if self.session is None:
            self.establish()
        retried = False
        while True:
            try:
                return self._sequenced(ops)
            except NfsError as e:
                if e.index != -1 or retried:
                    raise
                if e.status == NFS4ERR_SEQ_MISORDERED and self.session.slot.misordered():
                    pass  # the lost request never reached the server: send again
                elif e.status in SESSION_LOST_STATUSES:
                    self.recoveries.append(f"{e.name} at SEQUENCE: new client id and session")
                    self.establish()
                else:
                    raise
                retried = True

    def _sequenced(self, ops: list[Op]) -> list[object]:
        """SEQUENCE on slot 0 + `ops`; the slot moves on as nfs41.Slot says. An NfsError
        for SEQUENCE itself has index -1."""
        s = self.session
        assert s is not None
        seen: list[nfs41.SequenceResult] = []

        def keep(u) -> nfs41.SequenceResult:
            seen.append(nfs41.SequenceResult.unpack(u))
            return seen[-1]

        try:
            res = self._send([nfs41.sequence(s.sessionid, s.slot.seqid, decode=keep), *ops])
        except NfsError as e:
            if seen:
                s.slot.processed()
            if e.index is not None:
                e.index -= 1
            raise
        except OSError:
            s.slot.lost()
            raise
        except RpcError:
            if seen:
                s.slot.processed()
            raise
        s.slot.processed()
        s.last = seen[0]
        return res[1:]

    # ---- client id --------------------------------------------------------------------
    def establish(self) -> None:
        """Get a client id (and for 4.1 a session) with the stable name and verifier.

        4.0: SETCLIENTID + SETCLIENTID_CONFIRM. No callback service is run; the address given
        is this end's IP with port 0, so the server's callback probe fails and it never
        hands out delegations.
        4.1: EXCHANGE_ID (RFC 8881 18.35) then CREATE_SESSION (18.36), after a quiet
        DESTROY_SESSION of any session this object had. `server` then holds what the server
        presented (owner, scope). A client id the server did not know before (not
        EXCHGID4_FLAG_CONFIRMED_R) has not said RECLAIM_COMPLETE yet.
        """
        if self.minorversion == 1:
            self._establish41()
            return
        local_ip = self.rpc.local_address() or "127.0.0.1"
        res = self._send([nfs4.setclientid(self.verifier, self.client_name, f"{local_ip}.0.0")])
        clientid, confirm = res[0]  # type: ignore[misc]
        self._send([nfs4.setclientid_confirm(clientid, confirm)])
        self.clientid = clientid

    def _establish41(self) -> None:
        if self.session is not None:
            old, self.session = self.session, None
            try:
                self._send([nfs41.destroy_session(old.sessionid)])
            except NfsError:
                pass  # already gone with the old server instance
        eid = self._send([nfs41.exchange_id(self.verifier, self.client_name.encode())])[0]
        assert isinstance(eid, ExchangeIdResult)
        self.server = eid
        if eid.clientid != self.clientid or not eid.confirmed:
            self.reclaim_completed = False
        self.clientid = eid.clientid
        self._cs_seq = eid.sequenceid
        cs = self._send([nfs41.create_session(eid.clientid, self._cs_seq)])[0]
        assert isinstance(cs, nfs41.SessionResult)
        self._cs_seq = (self._cs_seq + 1) & 0xFFFFFFFF
        self.session = Session(cs.sessionid, cs.fore)

    def renew(self) -> None:
        """Keep the lease alive (anonymous-stateid READs do not renew it): RENEW for 4.0,
        a compound of SEQUENCE alone for 4.1 (RFC 8881 8.3)."""
        if self.minorversion == 1:
            self._compound([])
            return
        self._send([nfs4.renew(self._need_clientid())])

    def reclaim_complete(self) -> None:
        """RECLAIM_COMPLETE (RFC 8881 18.51): this client has reclaimed all it will. Until
        then Ganesha refuses its CLAIM_NULL opens (NFS4ERR_GRACE), and its grace ends early
        only once every client with a record sent it. A second one gets
        NFS4ERR_COMPLETE_ALREADY."""
        self._need41("RECLAIM_COMPLETE")
        self._compound([nfs41.reclaim_complete()])
        self.reclaim_completed = True

    def destroy_session(self) -> None:
        """DESTROY_SESSION (RFC 8881 18.37), alone in its compound (no SEQUENCE needed)."""
        self._need41("DESTROY_SESSION")
        if self.session is not None:
            sid, self.session = self.session.sessionid, None
            self._send([nfs41.destroy_session(sid)])

    def destroy_clientid(self) -> None:
        """DESTROY_CLIENTID (RFC 8881 18.50), after `destroy_session()`: the server forgets
        the client, its state and its recovery record (NFS4ERR_CLIENTID_BUSY while a
        session is left)."""
        self._need41("DESTROY_CLIENTID")
        self._send([nfs41.destroy_clientid(self._need_clientid())])
        self.clientid = None
        self.server = None
        self.reclaim_completed = False

    def _need41(self, what: str) -> None:
        if self.minorversion != 1:
            raise RuntimeError(f"{what} is an NFSv4.1 operation (this client speaks 4.{self.minorversion})")

    def _need_clientid(self) -> int:
        if self.clientid is None:
            raise RuntimeError("call establish() first")
        return self.clientid

    # ---- handles ----------------------------------------------------------------------
    def lookup(self, path: str) -> bytes:
        """PUTROOTFH, LOOKUP each component of the pseudo path, GETFH: the handle to keep."""
        ops = [nfs4.putrootfh(), *(nfs4.lookup(c) for c in _components(path)), nfs4.getfh()]
        return self._compound(ops)[-1]  # type: ignore[return-value]

    def getattr_size(self, fh: bytes) -> int:
        """PUTFH + GETATTR(size): the file's size as the server sees it."""
        return self._compound([nfs4.putfh(fh), nfs4.getattr_size()])[1]  # type: ignore[return-value]

    # ---- open state -------------------------------------------------------------------
    def _seqid(self, f: OpenFile) -> int:
        """The seqid to send for f's open-owner: 4.1 servers ignore it (RFC 8881 18.16.3)."""
        return f.seqid if self.minorversion == 0 else 0

    def _seqid_op(self, f: OpenFile, ops: list[Op], index: int) -> list[object]:
        """Run `ops`, where ops[index] carries f's open-owner seqid, and advance f.seqid as
        RFC 7530 9.1.7 says, so a retry after an error uses the seqid the server expects."""
        if self.minorversion == 1:
            return self._compound(ops)
        try:
            res = self._compound(ops)
        except NfsError as e:
            if e.index is not None and (e.index > index or
                                        (e.index == index and e.status not in SEQID_KEPT_ON)):
                f.seqid += 1
            raise
        f.seqid += 1
        return res

    def _confirm(self, f: OpenFile) -> None:
        """OPEN_CONFIRM: Ganesha asks for it on the first OPEN of each new open-owner."""
        res = self._seqid_op(f, [nfs4.putfh(f.fh), nfs4.open_confirm(f.stateid, f.seqid)], 1)
        f.stateid = res[1]  # type: ignore[assignment]
        f.confirmed = True

    def open(self, path: str, *, create: bool = False, write: bool = False) -> OpenFile:
        """OPEN (CLAIM_NULL) by pseudo path + GETFH, confirmed if the server asks (4.0).

        Each call uses a fresh open-owner, so an OPEN that failed (NFS4ERR_GRACE during a
        failover) leaves no seqid to get out of step with: retrying is just calling again.
        Fails with NFS4ERR_GRACE while the server is in grace: wrap it in `grace_aware`.
        4.1: a client id that has not said RECLAIM_COMPLETE says it first (new state means
        reclaiming is over, RFC 8881 18.51.3), so reclaim every open *before* a new one.
        """
        parts = _components(path)
        if not parts:
            raise ValueError("open() needs a file path, not the root")
        if self.minorversion == 1:
            if self.session is None:
                self.establish()
            if not self.reclaim_completed:
                self._reclaim_complete_once()
        owner = f"{self.client_name}/{os.getpid()}/{next(self._owner_seq)}".encode()
        access = SHARE_ACCESS_BOTH if write or create else SHARE_ACCESS_READ
        ops = [nfs4.putrootfh(), *(nfs4.lookup(c) for c in parts[:-1]),
               nfs4.open_(0, access, self._need_clientid(), owner, create, nfs4.claim_null(parts[-1])),
               nfs4.getfh()]
        res = self._compound(ops)
        stateid, rflags = res[-2]  # type: ignore[misc]
        f = OpenFile(path=path, fh=res[-1], stateid=stateid, owner=owner,  # type: ignore[arg-type]
                     seqid=1, access=access, confirmed=not rflags & OPEN4_RESULT_CONFIRM,
                     server_scope=self._scope())
        if self.minorversion == 1:
            f.confirmed = True  # no OPEN_CONFIRM in 4.1 (RFC 8881 18.16.4)
        elif not f.confirmed:
            self._confirm(f)
        return f

    def reclaim(self, f: OpenFile) -> OpenFile:
        """OPEN with CLAIM_PREVIOUS on PUTFH(f.fh): take the open back after a failover.

        Only valid during the new server's grace period and after `establish()` with the
        same client name (and, for Ganesha, the same client IP: its recovery records key on
        both). Returns a new OpenFile with the new stateid; `f.seqid` advances too (4.0).
        4.1: before RECLAIM_COMPLETE only (after it: NFS4ERR_NO_GRACE), and never on a
        server presenting another scope than the one that granted `f` (ScopeMismatch,
        unless `check_scope` is off, e.g. to show what the server itself would do).
        """
        if self.minorversion == 1:
            # SEQUENCE alone first: a session lost with the old server is re-made (with a
            # new EXCHANGE_ID) *before* the scope is compared, not inside the OPEN below.
            self._compound([])
            now = self._scope()
            if self.check_scope and f.server_scope is not None and now != f.server_scope:
                raise ScopeMismatch(f.server_scope, now or b"")
        ops = [nfs4.putfh(f.fh), nfs4.open_(self._seqid(f), f.access, self._need_clientid(), f.owner,
                                            False, nfs4.claim_previous())]
        res = self._seqid_op(f, ops, 1)
        stateid, rflags = res[1]  # type: ignore[misc]
        new = replace(f, stateid=stateid, confirmed=not rflags & OPEN4_RESULT_CONFIRM,
                      server_scope=self._scope() if self.minorversion == 1 else f.server_scope)
        if self.minorversion == 1:
            new.confirmed = True
        elif not new.confirmed:
            try:
                self._confirm(new)
            finally:
                f.seqid = new.seqid
        return new

    def close_file(self, f: OpenFile) -> None:
        """CLOSE the open state (the handle stays valid for anonymous READs)."""
        res = self._seqid_op(f, [nfs4.putfh(f.fh), nfs4.close(self._seqid(f), f.stateid)], 1)
        f.stateid = res[1]  # type: ignore[assignment]

    def _scope(self) -> bytes | None:
        return self.server.server_scope if self.server is not None else None

    def _reclaim_complete_once(self) -> None:
        """RECLAIM_COMPLETE where the server may already count it (the client id outlived a
        session recovery on the same server): NFS4ERR_COMPLETE_ALREADY is that, not a fault."""
        try:
            self.reclaim_complete()
        except NfsError as e:
            if e.status != NFS4ERR_COMPLETE_ALREADY:
                raise
            self.reclaim_completed = True

    # ---- data -------------------------------------------------------------------------
    def read(self, fh_or_file: bytes | OpenFile, offset: int, count: int) -> bytes:
        """PUTFH(saved handle) + READ until `count` bytes or EOF.

        Given only a handle, READ uses the anonymous stateid: no OPEN, no client id, so it
        exercises exactly "the handle the client already holds" on whatever server answers.
        """
        if isinstance(fh_or_file, OpenFile):
            fh, stateid = fh_or_file.fh, fh_or_file.stateid
        else:
            fh, stateid = bytes(fh_or_file), ANONYMOUS_STATEID
        out = bytearray()
        while len(out) < count:
            eof, data = self._compound([nfs4.putfh(fh), nfs4.read(stateid, offset + len(out),
                                                                  count - len(out))])[1]  # type: ignore[misc]
            out += data
            if eof or not data:
                break
        return bytes(out)

    def write(self, f: OpenFile, offset: int, data: bytes, stable: bool = True) -> int:
        """PUTFH + WRITE with the open stateid; FILE_SYNC when `stable`, so the bytes are on
        the server's disk before we return (what survives a SIGKILL failover)."""
        done = 0
        while done < len(data):
            n = self._compound([nfs4.putfh(f.fh), nfs4.write(f.stateid, offset + done, data[done:], stable)])[1]
            if not n:
                break
            done += n  # type: ignore[operator]
        return done

    # ---- recovery ---------------------------------------------------------------------
    def grace_aware(self, op: Callable[[], T], *, deadline: float) -> T:
        """Run `op` until it succeeds or `deadline` (a `time.monotonic()` value) passes.

        Retried: NFS4ERR_GRACE / NFS4ERR_DELAY (a server in recovery), connection errors
        (reconnect; the server may be moving), NFS4ERR_STALE_CLIENTID / NFS4ERR_EXPIRED
        (a new server instance: run `establish()` again, then `op`). Everything else is
        raised at once; above all NFS4ERR_STALE, a handle the new server does not know,
        which is the failure the lab exists to detect and must never be waited out.
        NFS4ERR_STALE_STATEID is raised too: the caller must `reclaim()` its opens; so is
        NFS4ERR_EXPIRED/STALE_CLIENTID when it comes back right after a fresh `establish()`
        (Ganesha answers EXPIRED for an old open stateid when the old and new instance
        started in the same second), since a new client id cannot revive old state.
        4.1 alike; a session the server lost is re-established inside each call already
        (`_compound`), and RECLAIM_COMPLETE is the caller's to send after its reclaims.
        At the deadline the last error is raised.
        """
        delay = 0.05
        need_establish = False
        while True:
            just_established = False
            try:
                if not self.connected:
                    self.connect()
                if need_establish:
                    self.establish()
                    need_establish = False
                    just_established = True
                return op()
            except NfsError as e:
                if e.status in REESTABLISH_STATUSES:
                    if just_established:
                        raise
                    need_establish = True
                elif e.status not in RETRY_STATUSES:
                    raise
                last: Exception = e
            except OSError as e:
                self.close()
                last = e
            left = deadline - time.monotonic()
            if left <= 0:
                raise last
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)

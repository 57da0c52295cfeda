"""The lab's NFSv4.0 client: one client identity, its opens, and what it does across a
failover (RFC 7530). Transport in rpc.py, the protocol's encoding in nfs4.py.

The identity (`client_name` and the boot verifier chosen here) stays the same across
`connect()`/`establish()` calls, so after a failover the new server sees the same client,
finds it in its recovery records and lets it reclaim during grace. Open-owner seqids
advance as RFC 7530 9.1.7 says, so a retry after an error sends the seqid the server
expects. Not thread-safe.
"""
from __future__ import annotations

import itertools
import os
import struct
import time
from dataclasses import dataclass, replace
from typing import Callable, TypeVar

from . import nfs4
from .nfs4 import (ANONYMOUS_STATEID, NFS4ERR_NAMES, NFS4ERR_STALE, OPEN4_RESULT_CONFIRM,
                   REESTABLISH_STATUSES, RETRY_STATUSES, SEQID_KEPT_ON, SHARE_ACCESS_BOTH,
                   SHARE_ACCESS_READ, NfsError, Op)
from .rpc import RpcConnection, RpcError, auth_sys
from .xdr import XdrError

__all__ = ["NfsError", "RpcError", "OpenFile", "Nfs4Client", "ANONYMOUS_STATEID", "NFS4ERR_NAMES",
           "NFS4ERR_STALE"]

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


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


class Nfs4Client:
    """One NFSv4.0 client identity talking to one server address over TCP."""

    def __init__(self, host: str, port: int = 2049, *, client_name: str = "gha-lab-client",
                 uid: int = 0, gid: int = 0, timeout: float = 5.0,
                 source_addr: str | None = None) -> None:
        self.client_name = client_name
        self.rpc = RpcConnection(host, port, nfs4.NFS_PROGRAM, nfs4.NFS_V4, cred=auth_sys(uid, gid),
                                 timeout=timeout, source_addr=source_addr)
        # Boot verifier: fixed for this object's life ("the same client instance"); a new
        # object is a rebooted client and makes the server drop the old one's state.
        self.verifier = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + os.urandom(4)
        self.clientid: int | None = None
        self._owner_seq = itertools.count(1)

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

    def _compound(self, ops: list[Op]) -> list[object]:
        """Run a COMPOUND; each op's decoded result, or NfsError naming the first op that
        failed (and its index); RpcError for a reply that does not decode."""
        u = self.rpc.call(nfs4.NFSPROC4_COMPOUND, nfs4.encode_compound(ops))
        try:
            return nfs4.decode_compound(u, ops)
        except XdrError as exc:
            raise RpcError(str(exc)) from None

    # ---- client id --------------------------------------------------------------------
    def establish(self) -> None:
        """SETCLIENTID + SETCLIENTID_CONFIRM with the stable name and verifier.

        No callback service is run; the address given is this end's IP with port 0, so the
        server's callback probe fails and it never hands out delegations.
        """
        local_ip = self.rpc.local_address() or "127.0.0.1"
        res = self._compound([nfs4.setclientid(self.verifier, self.client_name, f"{local_ip}.0.0")])
        clientid, confirm = res[0]  # type: ignore[misc]
        self._compound([nfs4.setclientid_confirm(clientid, confirm)])
        self.clientid = clientid

    def renew(self) -> None:
        """RENEW: keep the lease alive (anonymous-stateid READs do not renew it)."""
        self._compound([nfs4.renew(self._need_clientid())])

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
    def _seqid_op(self, f: OpenFile, ops: list[Op], index: int) -> list[object]:
        """Run `ops`, where ops[index] carries f's open-owner seqid, and advance f.seqid as
        RFC 7530 9.1.7 says, so a retry after an error uses the seqid the server expects."""
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
        """OPEN (CLAIM_NULL) by pseudo path + GETFH, confirmed if the server asks.

        Each call uses a fresh open-owner, so an OPEN that failed (NFS4ERR_GRACE during a
        failover) leaves no seqid to get out of step with: retrying is just calling again.
        Fails with NFS4ERR_GRACE while the server is in grace: wrap it in `grace_aware`.
        """
        parts = _components(path)
        if not parts:
            raise ValueError("open() needs a file path, not the root")
        owner = f"{self.client_name}/{os.getpid()}/{next(self._owner_seq)}".encode()
        access = SHARE_ACCESS_BOTH if write or create else SHARE_ACCESS_READ
        ops = [nfs4.putrootfh(), *(nfs4.lookup(c) for c in parts[:-1]),
               nfs4.open_(0, access, self._need_clientid(), owner, create, nfs4.claim_null(parts[-1])),
               nfs4.getfh()]
        res = self._compound(ops)
        stateid, rflags = res[-2]  # type: ignore[misc]
        f = OpenFile(path=path, fh=res[-1], stateid=stateid, owner=owner,  # type: ignore[arg-type]
                     seqid=1, access=access, confirmed=not rflags & OPEN4_RESULT_CONFIRM)
        if not f.confirmed:
            self._confirm(f)
        return f

    def reclaim(self, f: OpenFile) -> OpenFile:
        """OPEN with CLAIM_PREVIOUS on PUTFH(f.fh): take the open back after a failover.

        Only valid during the new server's grace period and after `establish()` with the
        same client name (and, for Ganesha, the same client IP: its recovery records key on
        both). Returns a new OpenFile with the new stateid; `f.seqid` advances too.
        """
        ops = [nfs4.putfh(f.fh),
               nfs4.open_(f.seqid, f.access, self._need_clientid(), f.owner, False, nfs4.claim_previous())]
        res = self._seqid_op(f, ops, 1)
        stateid, rflags = res[1]  # type: ignore[misc]
        new = replace(f, stateid=stateid, confirmed=not rflags & OPEN4_RESULT_CONFIRM)
        if not new.confirmed:
            try:
                self._confirm(new)
            finally:
                f.seqid = new.seqid
        return new

    def close_file(self, f: OpenFile) -> None:
        """CLOSE the open state (the handle stays valid for anonymous READs)."""
        res = self._seqid_op(f, [nfs4.putfh(f.fh), nfs4.close(f.seqid, f.stateid)], 1)
        f.stateid = res[1]  # type: ignore[assignment]

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

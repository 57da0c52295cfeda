"""The lab's NFSv3 clients: `Nfs3Client` (MOUNT3, then NFSv3 through the handles it keeps) and
`NlmClient` (NLM4 byte-range locks, kept so they can be reclaimed after SM_NOTIFY).

Why our own: no PyPI library speaks NLM (pyNfsClient, anfs, ShenanigaNFS stop at NFSv3 and
MOUNT), and the lab must replay a saved handle and choose when to reclaim, as with NFSv4.

Ports come from the server's rpcbind (PMAP GETPORT over TCP, RFC 1833) as a kernel client
gets them: MOUNT's and NLM's are dynamic in Ganesha 4.3 (MNT_Port and NLM_Port 0), and
they change when the server restarts or moves, so NLM asks for the port on every call and
MOUNT on every mount; NFS itself is asked once per `connect()` unless given. Every call
raises OSError for no answer (RpcError if the program is not registered: port 0), and
Nfs3Error for an NFS or MOUNT status; NLM answers are returned as the nlm4_stats number,
since DENIED and DENIED_GRACE_PERIOD are what a test looks for. Not thread-safe.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from . import nfs3, nlm4
from .nfs3 import Fattr3, Nfs3Error
from .nlm4 import NLM4_GRANTED, Nlm4Holder, Nlm4Lock
from .rpc import RpcConnection, RpcError, auth_sys
from .xdr import Unpacker, XdrError

__all__ = ["CallOptions", "Nfs3Client", "NlmClient", "HeldLock", "Reclaim", "Nfs3Error", "RpcError"]

PMAP_PORT = 111


@dataclass(frozen=True)
class CallOptions:
    """How a client's calls leave: from `source_addr` (any if None), from a port below 1024
    if `reserved_port`, AUTH_SYS `uid`/`gid`, `timeout` seconds to connect or to answer."""

    source_addr: str | None = None
    timeout: float = 5.0
    reserved_port: bool = False
    uid: int = 0
    gid: int = 0

    def connection(self, host: str, port: int, prog: int, vers: int) -> RpcConnection:
        return RpcConnection(host, port, prog, vers, cred=auth_sys(self.uid, self.gid),
                             timeout=self.timeout, source_addr=self.source_addr,
                             reserved_port=self.reserved_port)

    def call(self, host: str, port: int, prog: int, vers: int, proc: int, args: bytes, decode):
        """One call on a connection of its own; the decoded result (RpcError if it does not
        decode)."""
        conn = self.connection(host, port, prog, vers)
        conn.connect()
        try:
            u = conn.call(proc, args)
            try:
                return decode(u)
            except XdrError as exc:
                raise RpcError(str(exc)) from None
        finally:
            conn.close()

    def getport(self, host: str, prog: int, vers: int, proto: int = nfs3.IPPROTO_TCP) -> int:
        """PMAPPROC_GETPORT at `host`'s rpcbind (TCP 111): the port of `prog` `vers` over
        `proto`. RpcError when the program is not registered (the portmapper answers 0)."""
        port = self.call(host, PMAP_PORT, nfs3.PMAP_PROGRAM, nfs3.PMAP_V2, nfs3.PMAPPROC_GETPORT,
                         nfs3.getport_args(prog, vers, proto), lambda u: u.u32())
        if not port:
            raise RpcError(f"program {prog} version {vers} is not registered at {host}")
        return port


class Nfs3Client:
    """NFSv3 (AUTH_SYS `uid`/`gid`) to `host`, from `source_addr` if given."""

    def __init__(self, host: str, *, port: int | None = None, uid: int = 0, gid: int = 0,
                 timeout: float = 5.0, source_addr: str | None = None,
                 reserved_port: bool = False) -> None:
        self.host = host
        self.nfs_port = port
        self.opts = CallOptions(source_addr, timeout, reserved_port, uid, gid)
        self.rpc: RpcConnection | None = None

    # ---- connection -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self.rpc is not None and self.rpc.connected

    def connect(self) -> None:
        """(Re)open the NFS connection, asking rpcbind for the port unless it was given."""
        self.close()
        port = self.nfs_port or self.opts.getport(self.host, nfs3.NFS_PROGRAM, nfs3.NFS_V3)
        self.rpc = self.opts.connection(self.host, port, nfs3.NFS_PROGRAM, nfs3.NFS_V3)
        self.rpc.connect()

    def close(self) -> None:
        if self.rpc is not None:
            self.rpc.close()
            self.rpc = None

    def __enter__(self) -> "Nfs3Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _nfs(self, proc: int, args: bytes, decode):
        if not self.connected:
            self.connect()
        assert self.rpc is not None
        u: Unpacker = self.rpc.call(proc, args)
        try:
            return decode(u)
        except XdrError as exc:
            raise RpcError(str(exc)) from None

    # ---- MOUNT3 -----------------------------------------------------------------------
    def _mountd(self, proc: int, path: str, decode):
        port = self.opts.getport(self.host, nfs3.MOUNT_PROGRAM, nfs3.MOUNT_V3)
        return self.opts.call(self.host, port, nfs3.MOUNT_PROGRAM, nfs3.MOUNT_V3, proc,
                              nfs3.dirpath(path), decode)

    def mount(self, path: str) -> bytes:
        """MNT (RFC 1813 5.2.1): the root handle of export `path` (Ganesha: its Path, or its
        Pseudo with mount_path_pseudo). The server adds the client to its MOUNT list (rmtab)."""
        return self._mountd(nfs3.MOUNTPROC3_MNT, path, nfs3.decode_mnt)[0]

    def umount(self, path: str) -> None:
        """UMNT: leave the server's MOUNT list (no status is returned)."""
        self._mountd(nfs3.MOUNTPROC3_UMNT, path, lambda u: None)

    # ---- NFSv3 through handles ----------------------------------------------------------
    def lookup(self, dir_fh: bytes, name: str) -> bytes:
        """LOOKUP one name in directory `dir_fh`: the handle to keep."""
        return self._nfs(nfs3.NFSPROC3_LOOKUP, nfs3.diropargs(dir_fh, name), nfs3.decode_lookup)[0]

    def lookup_path(self, root_fh: bytes, path: str) -> bytes:
        fh = root_fh
        for name in (c for c in path.split("/") if c):
            fh = self.lookup(fh, name)
        return fh

    def getattr(self, fh: bytes) -> Fattr3:
        return self._nfs(nfs3.NFSPROC3_GETATTR, nfs3.fh_args(fh), nfs3.decode_getattr)

    def create(self, dir_fh: bytes, name: str, mode: int = 0o644) -> bytes:
        """CREATE (UNCHECKED: an existing file is opened, not truncated): its handle."""
        fh = self._nfs(nfs3.NFSPROC3_CREATE, nfs3.create_args(dir_fh, name, mode), nfs3.decode_create)
        return fh if fh is not None else self.lookup(dir_fh, name)

    def read(self, fh: bytes, offset: int, count: int) -> bytes:
        """READ until `count` bytes or end of file."""
        out = bytearray()
        while len(out) < count:
            eof, data = self._nfs(nfs3.NFSPROC3_READ, nfs3.read_args(fh, offset + len(out),
                                                                     count - len(out)), nfs3.decode_read)
            out += data
            if eof or not data:
                break
        return bytes(out)

    def write(self, fh: bytes, offset: int, data: bytes, stable: bool = True) -> int:
        """WRITE, FILE_SYNC when `stable` (on the server's disk before we return)."""
        done = 0
        how = nfs3.FILE_SYNC if stable else nfs3.UNSTABLE
        while done < len(data):
            n, _ = self._nfs(nfs3.NFSPROC3_WRITE, nfs3.write_args(fh, offset + done, data[done:], how),
                             nfs3.decode_write)
            if not n:
                break
            done += n
        return done


@dataclass(frozen=True)
class HeldLock:
    """A lock the server granted: where, what, and how (for a reclaim)."""

    server: str
    lock: Nlm4Lock
    exclusive: bool


@dataclass(frozen=True)
class Reclaim:
    """One reclaim attempt after SM_NOTIFY: its NLM4 answer, or the error that stopped it."""

    t: float                      # time.monotonic()
    held: HeldLock
    stat: int | None
    error: str = ""

    @property
    def granted(self) -> bool:
        return self.stat == NLM4_GRANTED


class NlmClient:
    """One NLM client (`caller_name`) locking files on NFSv3 servers, with its held locks.

    `caller_name` defaults to `source_addr` (else the host name): Ganesha monitors the client
    by the address it connects from anyway, and with NSM_Use_Caller_Name on it would hand
    the name to statd, which resolves an address with no DNS at all. `nsm_state` is this
    client's NSM state number sent with each LOCK (odd: up).
    """

    def __init__(self, caller_name: str | None = None, *, source_addr: str | None = None,
                 timeout: float = 5.0, nsm_state: int = 1, uid: int = 0, gid: int = 0,
                 reserved_port: bool = False) -> None:
        self.caller_name = caller_name or source_addr or socket.gethostname()
        self.nsm_state = nsm_state
        self.opts = CallOptions(source_addr, timeout, reserved_port, uid, gid)
        self.held: dict[tuple, HeldLock] = {}
        self.reclaims: list[Reclaim] = []

    def make_lock(self, fh: bytes, *, svid: int | None = None, offset: int = 0,
                  length: int = 0) -> Nlm4Lock:
        """An nlm4_lock of this client: owner `oh` is "<svid>@<caller_name>" as Linux makes it."""
        svid = os.getpid() & 0x7FFFFFFF if svid is None else svid
        return Nlm4Lock(self.caller_name, fh, f"{svid}@{self.caller_name}".encode(), svid, offset, length)

    def _nlm(self, server: str, proc: int, args: bytes, decode):
        port = self.opts.getport(server, nlm4.NLM_PROGRAM, nlm4.NLM_V4)
        return self.opts.call(server, port, nlm4.NLM_PROGRAM, nlm4.NLM_V4, proc, args, decode)

    @staticmethod
    def _key(server: str, lock: Nlm4Lock) -> tuple:
        return (server, lock.fh, lock.oh, lock.svid, lock.offset, lock.length)

    def lock(self, server: str, lock: Nlm4Lock, *, exclusive: bool = True, reclaim: bool = False) -> int:
        """NLM4 LOCK, never blocking (block=false: no callback service runs here); the
        nlm4_stats answer. A granted lock is kept for `reclaim_all`."""
        _, stat = self._nlm(server, nlm4.NLMPROC4_LOCK,
                            nlm4.lock_args(os.urandom(4), lock, exclusive=exclusive, block=False,
                                           reclaim=reclaim, state=self.nsm_state), nlm4.decode_res)
        if stat == NLM4_GRANTED:
            self.held[self._key(server, lock)] = HeldLock(server, lock, exclusive)
        return stat

    def unlock(self, server: str, lock: Nlm4Lock) -> int:
        """NLM4 UNLOCK; the lock is forgotten when the server says GRANTED."""
        _, stat = self._nlm(server, nlm4.NLMPROC4_UNLOCK, nlm4.unlock_args(os.urandom(4), lock),
                            nlm4.decode_res)
        if stat == NLM4_GRANTED:
            self.held.pop(self._key(server, lock), None)
        return stat

    def test(self, server: str, lock: Nlm4Lock, *, exclusive: bool = True) -> tuple[int, Nlm4Holder | None]:
        """NLM4 TEST: (GRANTED, None) if the lock could be had now, else (stat, the holder)."""
        _, stat, holder = self._nlm(server, nlm4.NLMPROC4_TEST,
                                    nlm4.lock_test_args(os.urandom(4), lock, exclusive=exclusive),
                                    nlm4.decode_testres)
        return stat, holder

    def reclaim_all(self, servers: set[str]) -> list[Reclaim]:
        """LOCK with reclaim=true for every held lock on one of `servers` (addresses): what
        a client does when SM_NOTIFY says such a server rebooted. Each outcome is returned
        and kept in `reclaims`. A lock the server refused to give back is forgotten (a lost
        lock); one whose reclaim got no answer is kept, for a later notification."""
        out = []
        for key, h in list(self.held.items()):
            if h.server not in servers:
                continue
            try:
                stat: int | None = self.lock(h.server, h.lock, exclusive=h.exclusive, reclaim=True)
                err = "" if stat == NLM4_GRANTED else nlm4.stat_name(stat)
            except (OSError, RpcError) as exc:
                stat, err = None, f"{type(exc).__name__}: {exc}"
            if stat is not None and stat != NLM4_GRANTED:
                self.held.pop(key, None)
            out.append(Reclaim(time.monotonic(), h, stat, err))
        self.reclaims += out
        return out

"""ONC RPC over one TCP connection (RFC 5531): record marking, AUTH_SYS, one call at a time.

The transport of the lab's NFS client. Any socket trouble closes the connection and raises
OSError, so a caller can reconnect without ever reading a stale reply; a reply the server
sends to an abandoned call (an xid we no longer wait for) is skipped. Not thread-safe.
"""
from __future__ import annotations

import random
import socket
import struct
import time

from .xdr import Packer, Unpacker, XdrError, pack

RPC_VERSION = 2
AUTH_NONE = 0
AUTH_SYS = 1
LAST_FRAGMENT = 0x80000000    # record marking (RFC 5531 11): the last fragment of a record


class RpcError(Exception):
    """The RPC layer refused the call (wrong program/version, auth, garbage args) or the reply
    could not be decoded.

    Not an `OSError`: retrying after a reconnect would not help, so a client lets it out.
    """


def auth_sys(uid: int = 0, gid: int = 0, machine: str | None = None) -> bytes:
    """An AUTH_SYS credential body (RFC 5531 appendix A): stamp, machine name, uid, gid, no groups."""
    name = (machine if machine is not None else socket.gethostname())[:255]
    return pack(lambda p: (p.u32(int(time.time()) & 0xFFFFFFFF), p.string(name),
                           p.u32(uid), p.u32(gid), p.u32(0)))


class RpcConnection:
    """Calls to program `prog` version `vers` at `host`:`port`, AUTH_SYS as `cred`."""

    def __init__(self, host: str, port: int, prog: int, vers: int, *, cred: bytes,
                 timeout: float = 5.0, source_addr: str | None = None) -> None:
        self.host = host
        self.port = port
        self.prog = prog
        self.vers = vers
        self.cred = cred
        self.source_addr = source_addr
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._xid = random.getrandbits(32)

    # ---- the connection ---------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._sock is not None

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        """Seconds a connect or a reply may take; applies to the open connection too."""
        self._timeout = seconds
        if self._sock is not None:
            self._sock.settimeout(seconds)

    def local_address(self) -> str | None:
        return self._sock.getsockname()[0] if self._sock is not None else None

    def connect(self) -> None:
        """Open the TCP connection (closing any old one): also how to reach a restarted server."""
        self.close()
        src = (self.source_addr, 0) if self.source_addr else None
        sock = socket.create_connection((self.host, self.port), timeout=self._timeout,
                                        source_address=src)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    # ---- records ------------------------------------------------------------------------
    def _recv_exact(self, n: int) -> bytes:
        assert self._sock is not None
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionResetError("NFS server closed the connection")
            buf += chunk
        return bytes(buf)

    def _recv_record(self) -> bytes:
        parts = []
        while True:
            (marker,) = struct.unpack(">I", self._recv_exact(4))
            parts.append(self._recv_exact(marker & ~LAST_FRAGMENT))
            if marker & LAST_FRAGMENT:
                return b"".join(parts)

    # ---- one call -----------------------------------------------------------------------
    def call(self, proc: int, args: bytes) -> Unpacker:
        """Call `proc` with the encoded `args`; return the decoder positioned at the results.

        Raises OSError (connection trouble, the connection is then closed) or RpcError
        (MSG_DENIED, or an accept_stat other than SUCCESS).
        """
        if self._sock is None:
            raise ConnectionError("not connected")
        self._xid = (self._xid + 1) & 0xFFFFFFFF
        xid = self._xid
        p = Packer()
        for v in (xid, 0, RPC_VERSION, self.prog, self.vers, proc, AUTH_SYS):
            p.u32(v)
        p.opaque(self.cred)
        p.u32(AUTH_NONE)
        p.opaque(b"")
        p.raw(args)
        msg = p.bytes()
        try:
            self._sock.sendall(struct.pack(">I", LAST_FRAGMENT | len(msg)) + msg)
            while True:
                u = Unpacker(self._recv_record())
                if u.u32() == xid:
                    break  # anything else is a late reply to an abandoned call
        except OSError:
            self.close()
            raise
        except XdrError as exc:
            raise RpcError(str(exc)) from None
        try:
            if u.u32() != 1:
                raise RpcError("not an RPC reply")
            if u.u32() != 0:  # MSG_DENIED
                reject = u.u32()
                raise RpcError("RPC version mismatch" if reject == 0 else f"RPC auth error {u.u32()}")
            u.u32()  # verifier flavor
            u.opaque()
            accept = u.u32()
        except XdrError as exc:
            raise RpcError(str(exc)) from None
        if accept != 0:
            raise RpcError(f"RPC call not accepted (accept_stat {accept})")
        return u

"""NLM version 4 (the Network Lock Manager of NFSv3, X/Open XNFS 4.2 / RFC 1813 appendix) and
the one NSM message a client receives, SM_NOTIFY (X/Open XNFS ch. 11). Pure.

How Ganesha 4.3 treats these (measured; src/Protocols/NLM, src/SAL/nlm_owner.c):
* a lock is owned by (caller_name, oh, svid); `caller_name` names the client's NLM, but
  the host Ganesha asks its statd to monitor (SM_MON mon_name) is the client's **IP
  address as its socket sees it** (NSM_Use_Caller_Name defaults to false), so statd's
  record, and later sm-notify, reach the client at that address whatever name it gave;
* `reclaim` is honoured only in grace and a new lock only outside it: the wrong one gets
  NLM4_DENIED_GRACE_PERIOD; Ganesha keeps no NLM reclaim records of its own.
"""
from __future__ import annotations

from dataclasses import dataclass

from .xdr import Packer, Unpacker, pack

NLM_PROGRAM = 100021
NLM_V4 = 4
NLMPROC4_TEST = 1
NLMPROC4_LOCK = 2
NLMPROC4_UNLOCK = 4

SM_PROGRAM = 100024
SM_V1 = 1
SM_NOTIFY = 6
SM_MAXSTRLEN = 1024
LM_MAXSTRLEN = 1024

NLM4_GRANTED = 0
NLM4_DENIED = 1
NLM4_DENIED_NOLOCKS = 2
NLM4_BLOCKED = 3
NLM4_DENIED_GRACE_PERIOD = 4
NLM4_STATS = {
    0: "NLM4_GRANTED", 1: "NLM4_DENIED", 2: "NLM4_DENIED_NOLOCKS", 3: "NLM4_BLOCKED",
    4: "NLM4_DENIED_GRACE_PERIOD", 5: "NLM4_DEADLCK", 6: "NLM4_ROFS", 7: "NLM4_STALE_FH",
    8: "NLM4_FBIG", 9: "NLM4_FAILED",
}


def stat_name(stat: int) -> str:
    return NLM4_STATS.get(stat, f"NLM4_{stat}")


@dataclass(frozen=True)
class Nlm4Lock:
    """nlm4_lock: a byte range [offset, offset+length) of the file `fh` (length 0 = to the
    end), owned by `oh` + `svid` (the process) of the client `caller_name`."""

    caller_name: str
    fh: bytes
    oh: bytes
    svid: int
    offset: int = 0
    length: int = 0

    def pack(self, p: Packer) -> None:
        p.string(self.caller_name)
        p.opaque(self.fh)
        p.opaque(self.oh)
        p.i32(self.svid)
        p.u64(self.offset)
        p.u64(self.length)

    @classmethod
    def unpack(cls, u: Unpacker) -> "Nlm4Lock":
        return cls(u.string(LM_MAXSTRLEN), u.opaque(), u.opaque(), u.i32(), u.u64(), u.u64())


@dataclass(frozen=True)
class Nlm4Holder:
    """nlm4_holder: who holds the lock that made a TEST answer NLM4_DENIED."""

    exclusive: bool
    svid: int
    oh: bytes
    offset: int
    length: int

    def pack(self, p: Packer) -> None:
        p.boolean(self.exclusive)
        p.i32(self.svid)
        p.opaque(self.oh)
        p.u64(self.offset)
        p.u64(self.length)

    @classmethod
    def unpack(cls, u: Unpacker) -> "Nlm4Holder":
        return cls(u.boolean(), u.i32(), u.opaque(), u.u64(), u.u64())


@dataclass(frozen=True)
class StatChge:
    """stat_chge, the argument of SM_NOTIFY: host `mon_name` rebooted, its NSM state is now
    `state` (odd = up). sm-notify sends the name it was given with -v (never an address)."""

    mon_name: str
    state: int

    def pack(self, p: Packer) -> None:
        p.string(self.mon_name)
        p.i32(self.state)

    @classmethod
    def unpack(cls, u: Unpacker) -> "StatChge":
        return cls(u.string(SM_MAXSTRLEN), u.i32())


def lock_args(cookie: bytes, lock: Nlm4Lock, *, exclusive: bool = True, block: bool = False,
              reclaim: bool = False, state: int = 1) -> bytes:
    """nlm4_lockargs; `state` is the client's own NSM state number."""
    return pack(lambda p: (p.opaque(cookie), p.boolean(block), p.boolean(exclusive), lock.pack(p),
                           p.boolean(reclaim), p.i32(state)))


def unlock_args(cookie: bytes, lock: Nlm4Lock) -> bytes:
    return pack(lambda p: (p.opaque(cookie), lock.pack(p)))


def lock_test_args(cookie: bytes, lock: Nlm4Lock, *, exclusive: bool = True) -> bytes:
    return pack(lambda p: (p.opaque(cookie), p.boolean(exclusive), lock.pack(p)))


def decode_res(u: Unpacker) -> tuple[bytes, int]:
    """nlm4_res: (cookie, nlm4_stats)."""
    return u.opaque(), u.u32()


def decode_testres(u: Unpacker) -> tuple[bytes, int, Nlm4Holder | None]:
    """nlm4_testres: (cookie, stat, the holder when NLM4_DENIED)."""
    cookie, stat = u.opaque(), u.u32()
    return cookie, stat, Nlm4Holder.unpack(u) if stat == NLM4_DENIED else None

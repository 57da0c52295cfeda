"""NFSv3 and MOUNT3 (RFC 1813) and the portmapper's GETPORT (RFC 1833): program numbers,
status codes, and the encoding of the few procedures the lab's NFSv3 client uses. Pure.

Arguments are encoded by functions returning bytes; results by `decode_*` functions that
raise `Nfs3Error` for a status other than NFS3_OK (MNT3_OK for MOUNT), after reading the
failure arm, so the decoder never leaves bytes behind. Attributes are `Fattr3`, a
dataclass whose pack/unpack are each other's inverse.
"""
from __future__ import annotations

from dataclasses import dataclass

from .xdr import Packer, Unpacker, pack

PMAP_PROGRAM = 100000
PMAP_V2 = 2
PMAPPROC_GETPORT = 3
IPPROTO_TCP = 6
IPPROTO_UDP = 17

MOUNT_PROGRAM = 100005
MOUNT_V3 = 3
MOUNTPROC3_MNT = 1
MOUNTPROC3_UMNT = 3

NFS_PROGRAM = 100003
NFS_V3 = 3
NFSPROC3_GETATTR = 1
NFSPROC3_LOOKUP = 3
NFSPROC3_READ = 6
NFSPROC3_WRITE = 7
NFSPROC3_CREATE = 8

FHSIZE3 = 64                 # NFS3_FHSIZE: the largest file handle
UNSTABLE = 0                 # stable_how
FILE_SYNC = 2
UNCHECKED = 0                # createmode3
GUARDED = 1

NFS3ERR_NAMES: dict[int, str] = {
    0: "NFS3_OK", 1: "NFS3ERR_PERM", 2: "NFS3ERR_NOENT", 5: "NFS3ERR_IO", 6: "NFS3ERR_NXIO",
    13: "NFS3ERR_ACCES", 17: "NFS3ERR_EXIST", 18: "NFS3ERR_XDEV", 19: "NFS3ERR_NODEV",
    20: "NFS3ERR_NOTDIR", 21: "NFS3ERR_ISDIR", 22: "NFS3ERR_INVAL", 27: "NFS3ERR_FBIG",
    28: "NFS3ERR_NOSPC", 30: "NFS3ERR_ROFS", 31: "NFS3ERR_MLINK", 63: "NFS3ERR_NAMETOOLONG",
    66: "NFS3ERR_NOTEMPTY", 69: "NFS3ERR_DQUOT", 70: "NFS3ERR_STALE", 71: "NFS3ERR_REMOTE",
    10001: "NFS3ERR_BADHANDLE", 10002: "NFS3ERR_NOT_SYNC", 10003: "NFS3ERR_BAD_COOKIE",
    10004: "NFS3ERR_NOTSUPP", 10005: "NFS3ERR_TOOSMALL", 10006: "NFS3ERR_SERVERFAULT",
    10007: "NFS3ERR_BADTYPE", 10008: "NFS3ERR_JUKEBOX",
}
MNT3ERR_NAMES: dict[int, str] = {
    0: "MNT3_OK", 1: "MNT3ERR_PERM", 2: "MNT3ERR_NOENT", 5: "MNT3ERR_IO", 13: "MNT3ERR_ACCES",
    20: "MNT3ERR_NOTDIR", 22: "MNT3ERR_INVAL", 63: "MNT3ERR_NAMETOOLONG",
    10004: "MNT3ERR_NOTSUPP", 10006: "MNT3ERR_SERVERFAULT",
}
NFS3ERR_STALE = 70
NFS3ERR_JUKEBOX = 10008


class Nfs3Error(Exception):
    """The server answered an NFSv3 or MOUNT procedure with a status other than OK.

    Kept apart from `OSError` (no answer) for the same reason as NfsError: the lab must tell
    an outage from a server that says NFS3ERR_STALE to a handle the client still holds.
    """

    def __init__(self, status: int, proc: str, *, mount: bool = False) -> None:
        self.status = status
        names = MNT3ERR_NAMES if mount else NFS3ERR_NAMES
        self.name = names.get(status, f"{'MNT3ERR' if mount else 'NFS3ERR'}_{status}")
        self.proc = proc
        super().__init__(f"{proc}: {self.name} ({status})")


# ---- portmapper -----------------------------------------------------------------------------

def getport_args(prog: int, vers: int, proto: int = IPPROTO_TCP) -> bytes:
    """PMAPPROC_GETPORT's mapping (RFC 1833 3.1); the reply is one u32, 0 = not registered."""
    return pack(lambda p: (p.u32(prog), p.u32(vers), p.u32(proto), p.u32(0)))


# ---- MOUNT3 ---------------------------------------------------------------------------------

def dirpath(path: str) -> bytes:
    return pack(lambda p: p.string(path))


def decode_mnt(u: Unpacker) -> tuple[bytes, list[int]]:
    """mountres3: (file handle, auth flavors) or Nfs3Error(mount=True)."""
    status = u.u32()
    if status != 0:
        raise Nfs3Error(status, "MNT", mount=True)
    fh = _fh(u)
    return fh, [u.u32() for _ in range(u.u32())]


# ---- NFSv3 ----------------------------------------------------------------------------------

def _fh(u: Unpacker) -> bytes:
    return u.opaque(FHSIZE3)


@dataclass(frozen=True)
class Fattr3:
    """fattr3 (RFC 1813 2.6): times are (seconds, nanoseconds), rdev (major, minor)."""

    type: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    used: int
    rdev: tuple[int, int]
    fsid: int
    fileid: int
    atime: tuple[int, int]
    mtime: tuple[int, int]
    ctime: tuple[int, int]

    def pack(self, p: Packer) -> None:
        for v in (self.type, self.mode, self.nlink, self.uid, self.gid):
            p.u32(v)
        p.u64(self.size)
        p.u64(self.used)
        p.u32(self.rdev[0])
        p.u32(self.rdev[1])
        p.u64(self.fsid)
        p.u64(self.fileid)
        for t in (self.atime, self.mtime, self.ctime):
            p.u32(t[0])
            p.u32(t[1])

    @classmethod
    def unpack(cls, u: Unpacker) -> "Fattr3":
        head = [u.u32() for _ in range(5)]
        size, used = u.u64(), u.u64()
        rdev = (u.u32(), u.u32())
        fsid, fileid = u.u64(), u.u64()
        times = [(u.u32(), u.u32()) for _ in range(3)]
        return cls(*head, size, used, rdev, fsid, fileid, *times)


def _post_op_attr(u: Unpacker) -> Fattr3 | None:
    return Fattr3.unpack(u) if u.boolean() else None


def _wcc_data(u: Unpacker) -> Fattr3 | None:
    """wcc_data: skip the pre-op (size, mtime, ctime), return the post-op attributes."""
    if u.boolean():
        u.u64()
        u.fixed(16)
    return _post_op_attr(u)


def _status(u: Unpacker, proc: str, on_fail) -> None:
    status = u.u32()
    if status != 0:
        on_fail(u)
        raise Nfs3Error(status, proc)


def fh_args(fh: bytes) -> bytes:
    return pack(lambda p: p.opaque(fh))


def decode_getattr(u: Unpacker) -> Fattr3:
    _status(u, "GETATTR", lambda _: None)
    return Fattr3.unpack(u)


def diropargs(dir_fh: bytes, name: str) -> bytes:
    return pack(lambda p: (p.opaque(dir_fh), p.string(name)))


def decode_lookup(u: Unpacker) -> tuple[bytes, Fattr3 | None]:
    """LOOKUP3res: (object handle, its attributes if sent)."""
    _status(u, "LOOKUP", _post_op_attr)
    fh = _fh(u)
    attrs = _post_op_attr(u)
    _post_op_attr(u)  # the directory's
    return fh, attrs


def read_args(fh: bytes, offset: int, count: int) -> bytes:
    return pack(lambda p: (p.opaque(fh), p.u64(offset), p.u32(count)))


def decode_read(u: Unpacker) -> tuple[bool, bytes]:
    """READ3res: (eof, data)."""
    _status(u, "READ", _post_op_attr)
    _post_op_attr(u)
    u.u32()  # count (the data's length says it again)
    eof = u.boolean()
    return eof, u.opaque()


def write_args(fh: bytes, offset: int, data: bytes, stable: int = FILE_SYNC) -> bytes:
    return pack(lambda p: (p.opaque(fh), p.u64(offset), p.u32(len(data)), p.u32(stable),
                           p.opaque(data)))


def decode_write(u: Unpacker) -> tuple[int, int]:
    """WRITE3res: (count written, how it was committed)."""
    _status(u, "WRITE", _wcc_data)
    _wcc_data(u)
    count, committed = u.u32(), u.u32()
    u.fixed(8)  # write verifier
    return count, committed


def create_args(dir_fh: bytes, name: str, mode: int = 0o644, guarded: bool = False) -> bytes:
    """CREATE3args, UNCHECKED (or GUARDED: NFS3ERR_EXIST if it exists) with only the mode set."""
    def args(p: Packer) -> None:
        p.opaque(dir_fh)
        p.string(name)
        p.u32(GUARDED if guarded else UNCHECKED)
        p.boolean(True)   # set_mode3
        p.u32(mode)
        for _ in range(3):   # uid, gid, size: not set
            p.boolean(False)
        p.u32(0)   # atime: DONT_CHANGE
        p.u32(0)   # mtime: DONT_CHANGE
    return pack(args)


def decode_create(u: Unpacker) -> bytes | None:
    """CREATE3res: the new file's handle (None if the server did not send one)."""
    _status(u, "CREATE", _wcc_data)
    fh = _fh(u) if u.boolean() else None
    _post_op_attr(u)
    _wcc_data(u)
    return fh

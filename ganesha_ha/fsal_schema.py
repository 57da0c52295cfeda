"""What each supported FSAL takes: its options with their types, ranges, defaults and which are
required or secret, its Debian package and module file, and where its export's Path lives (pure
tables, no I/O).

Source: nfs-ganesha V4.3 (what Debian 12 ships), each FSAL's `config_item` tables, cited per
FSAL below; checked against ganesha.nfsd 4.3 by tests/server/test_fsal_live.py (a value out of
range or a missing mandatory key is refused by the daemon as here; an unknown key is only a
partial success there, which is why this table refuses it first). Two kinds of option:
- export options live in the export's `FSAL { Name = X; ... }` sub-block and are read for
  every export;
- module options live in a top-level `X { ... }` block that Ganesha reads once, when the FSAL
  module is first loaded, and only from the file being processed: for an FSAL first loaded by
  a D-Bus AddExport, the file handed to AddExport (src/FSAL/fsal_manager.c:fsal_load_init;
  nfs-ganesha issue #929). So they are node-wide in effect: the first export that loads the
  module decides them, and a change takes effect only when ganesha.nfsd next loads it.

Option names are matched case-insensitively (as Ganesha does) and stored in Ganesha's spelling.
Values are kept as canonical text of their type; backends/ganesha_conf.py renders each kind in
the one form Ganesha's lexer reads as that kind (src/config_parsing/conf_lex.l: numbers and
booleans bare, strings double-quoted).
"""
from __future__ import annotations

from .errors import ValidationError

# value kinds
BOOL = "bool"      # true/false (Ganesha also reads yes/no/on/off); stored "true"/"false"
UINT = "uint"      # a decimal whole number within [lo, hi]
TOKEN = "token"    # one word of `choices` (case-insensitive); stored in Ganesha's spelling
IP = "ip"          # an IPv4 or IPv6 address (Ganesha's lexer wants an address, not a name)
STR = "str"        # text of lo..hi bytes, double-quoted when rendered
PATH = "path"      # an absolute path of lo..hi bytes, double-quoted when rendered
MODE = "mode"      # a file mode 0..0777, written in octal

MiB = 1024 * 1024
FSAL_MAXIOSIZE = 64 * MiB          # include/fsal_types.h (XDR_BYTES_MAXLEN_IO)
MAXPATHLEN = 4096
NAME_MAX = 255
UINT32_MAX = 2**32 - 1

REDACTED = "<redacted>"


class Option:
    """One option of an FSAL. `name` is Ganesha's spelling; `key` is what a user types and the
    registry stores (the same, except where Ganesha's name is taken: RGW's module `name`)."""

    __slots__ = ("name", "kind", "lo", "hi", "choices", "default", "required", "secret", "module",
                 "in_place", "ha_default", "key", "doc")

    def __init__(self, name: str, kind: str, *, lo: int = 0, hi: int = UINT32_MAX,
                 choices: tuple[str, ...] = (), default: str | None = None, required: bool = False,
                 secret: bool = False, module: bool = False, in_place: bool = False,
                 ha_default: str | None = None, key: str | None = None, doc: str = ""):
        self.name = name
        self.kind = kind
        self.lo, self.hi = lo, hi        # UINT: the range; STR/PATH: length in bytes
        self.choices = choices           # TOKEN
        self.default = default           # Ganesha's default, for documentation (None: unset)
        self.required = required         # CONF_MAND_*: Ganesha refuses the export without it
        self.secret = secret             # never printed: redacted in output, logs and errors
        self.module = module             # in the module block (see the module docstring)
        self.in_place = in_place         # Ganesha's UpdateExport applies a change of it
        self.ha_default = ha_default     # what ganesha-ha renders when unset (a documented choice)
        self.key = key or name
        self.doc = doc

    def describe(self) -> str:
        """`Srv_Addr (IP address, required)`: for error messages and the README table."""
        kind = {BOOL: "true/false", UINT: f"{self.lo}-{self.hi}", IP: "IP address",
                TOKEN: "|".join(self.choices), STR: "text", PATH: "absolute path",
                MODE: "mode 0-0777"}[self.kind]
        extra = [kind] + (["required"] if self.required else []) + (["secret"] if self.secret else [])
        if self.default is not None:
            extra.append(f"default {self.default}")
        return f"{self.key} ({', '.join(extra)})"


class FsalSchema:
    """One FSAL ganesha-ha knows."""

    __slots__ = ("name", "package", "remote", "stacking", "options", "source", "handle", "remove_wait")

    def __init__(self, name: str, package: str | None, options: tuple[Option, ...], *, remote: bool,
                 source: str, stacking: bool = False, handle: str = "", remove_wait: float = 0.0):
        self.name = name            # Ganesha's FSAL name (FSAL { Name = ... })
        self.package = package      # the Debian 12 package shipping the module (None: none does)
        self.remote = remote        # the export's Path is in the FSAL's own namespace, not a local directory
        self.stacking = stacking    # sits on another FSAL, given as its nested FSAL block (NULL)
        self.options = options
        self.source = source        # where the tables come from (nfs-ganesha V4.3)
        self.handle = handle        # how its file handles identify the file system (README)
        # seconds a RemoveExport of its export may block Ganesha's D-Bus thread beyond the usual
        # (PROXY_V4's depends on its options: backends/ganesha.py)
        self.remove_wait = remove_wait

    @property
    def library(self) -> str:
        """The module file Ganesha loads: `libfsal<lower-case name>.so` in its Plugins_Dir
        (src/FSAL/fsal_manager.c:load_fsal)."""
        return f"libfsal{self.name.lower()}.so"

    def option(self, key: str) -> Option:
        """The option called `key` (case-insensitive); ValidationError listing the valid ones."""
        low = key.lower()
        for opt in self.options:
            if opt.key.lower() == low:
                return opt
        valid = ", ".join(o.key for o in self.options) or "none"
        raise ValidationError("fsal option", f"FSAL {self.name} has no option {key!r} (valid: {valid})")


def _local_module(*extra: Option) -> tuple[Option, ...]:
    """The module block of the VFS family (FSAL_VFS/vfs/main-c.in.cmake, xfs/main.c)."""
    return (
        Option("link_support", BOOL, default="true", module=True),
        Option("symlink_support", BOOL, default="true", module=True),
        Option("cansettime", BOOL, default="true", module=True),
        Option("maxread", UINT, lo=512, hi=FSAL_MAXIOSIZE, default=str(FSAL_MAXIOSIZE), module=True),
        Option("maxwrite", UINT, lo=512, hi=FSAL_MAXIOSIZE, default=str(FSAL_MAXIOSIZE), module=True),
        Option("umask", MODE, default="0", module=True),
        Option("auth_xdev_export", BOOL, default="false", module=True),
        *extra,
    )


FSID_TYPES = ("None", "One64", "Major64", "Two64", "uuid", "Two32", "Dev", "Device")
# fsid_type values that make a handle carry the device number (st_dev) whenever the file
# system has no UUID libblkid can read: a node where the volume's block device has another
# minor number then answers NFS4ERR_STALE (src/FSAL/localfs.c:change_fsid_type; measured in
# docs/research/ganesha-facts.md section I). Refused for HA exports unless forced.
DEVICE_FSID_TYPES = ("Dev", "Device")

_VFS_EXPORT = (
    Option("fsid_type", TOKEN, choices=FSID_TYPES, default="None",
           doc="how the handle's file-system id is derived from the file system's own id"),
    Option("async_hsm_restore", BOOL, default="true"),
)
_LOCAL_HANDLE = ("the handle carries the file system's id: its UUID when libblkid reads one (ext4, XFS "
                 "on any block device), else statfs' f_fsid; fsid_type Dev/Device and Ganesha's "
                 "fsid_device=true use the device number instead (refused)")

SCHEMAS: dict[str, FsalSchema] = {s.name: s for s in (
    FsalSchema("VFS", "nfs-ganesha-vfs", (*_VFS_EXPORT, *_local_module(
        Option("only_one_user", BOOL, default="false", module=True))), remote=False,
        source="FSAL_VFS/vfs/subfsal_vfs.c, vfs/main-c.in.cmake", handle=_LOCAL_HANDLE),
    FsalSchema("XFS", None, _local_module(Option("only_one_user", BOOL, default="false", module=True)),
               remote=False, source="FSAL_VFS/xfs/subfsal_xfs.c, xfs/main.c", handle=_LOCAL_HANDLE),
    FsalSchema("LUSTRE", None, (*_VFS_EXPORT, *_local_module(
        Option("only_one_user", BOOL, default="false", module=True))), remote=False,
        source="FSAL_VFS/vfs (built as LUSTRE with liblustreapi)", handle=_LOCAL_HANDLE),
    FsalSchema("GPFS", "nfs-ganesha-gpfs", (
        Option("ignore_mode_change", BOOL, default="false"),
        Option("link_support", BOOL, default="true", module=True),
        Option("symlink_support", BOOL, default="true", module=True),
        Option("cansettime", BOOL, default="true", module=True),
        Option("umask", MODE, default="0", module=True),
        Option("auth_xdev_export", BOOL, default="false", module=True),
        Option("Delegations", TOKEN, choices=("NONE", "Read", "Write", "Readwrite", "R", "W", "RW"),
               default="Read", module=True),
        Option("PNFS_MDS", BOOL, default="true", module=True),
        Option("PNFS_DS", BOOL, default="true", module=True),
        Option("fsal_trace", BOOL, default="true", module=True),
        Option("fsal_grace", BOOL, default="false", module=True),
    ), remote=False, source="FSAL_GPFS/export.c, FSAL_GPFS/main.c",
        handle="GPFS's own handles carry the GPFS file-system id: the same on every node"),
    FsalSchema("CEPH", "nfs-ganesha-ceph", (
        Option("user_id", STR, hi=64, doc="cephx user (without 'client.')"),
        Option("filesystem", STR, hi=NAME_MAX, doc="CephFS file system name"),
        Option("secret_access_key", STR, hi=88, secret=True, doc="cephx key"),
        Option("sec_label_xattr", STR, hi=256, default="security.selinux"),
        Option("ceph_conf", PATH, lo=1, hi=MAXPATHLEN, module=True, doc="ceph.conf to read"),
        Option("umask", MODE, default="0", module=True),
    ), remote=True, source="FSAL_CEPH/main.c",
        handle="handles carry CephFS inode numbers and the export id: the same from every node"),
    FsalSchema("GLUSTER", "nfs-ganesha-gluster", (
        Option("volume", STR, lo=1, hi=MAXPATHLEN, required=True, doc="GlusterFS volume name"),
        Option("hostname", STR, lo=1, hi=MAXPATHLEN, required=True, doc="a GlusterFS server"),
        Option("volpath", PATH, lo=1, hi=MAXPATHLEN, default="/", doc="directory inside the volume"),
        Option("glfs_log", PATH, lo=1, hi=MAXPATHLEN, default="/var/log/ganesha/ganesha-gfapi.log"),
        Option("up_poll_usec", UINT, lo=1, hi=60_000_000, default="10"),
        Option("enable_upcall", BOOL, default="true"),
        Option("transport", TOKEN, choices=("tcp", "rdma"), default="tcp"),
        Option("sec_label_xattr", STR, hi=256, default="security.selinux"),
        Option("pnfs_mds", BOOL, default="false", module=True),
        Option("pnfs_ds", BOOL, default="true", module=True),
    ), remote=True, source="FSAL_GLUSTER/export.c, FSAL_GLUSTER/main.c",
        handle="handles carry the volume id and GFIDs: the same from every node",
        # RemoveExport → glfs_fini waits in protocol/client's fini for the disconnect: 8-9 s idle
        # and more after I/O (measured; glusterfs issue #2606, closed wontfix)
        remove_wait=30.0),
    FsalSchema("RGW", "nfs-ganesha-rgw", (
        Option("user_id", STR, hi=32, required=True),
        Option("access_key_id", STR, hi=20, required=True),
        Option("secret_access_key", STR, hi=40, required=True, secret=True),
        Option("ceph_conf", PATH, lo=1, hi=MAXPATHLEN, module=True),
        Option("name", STR, lo=1, hi=MAXPATHLEN, module=True, key="rgw_name",
               doc="the RGW client name (rendered as `name` in the RGW block)"),
        Option("cluster", STR, lo=1, hi=MAXPATHLEN, module=True),
        Option("init_args", STR, lo=1, hi=MAXPATHLEN, module=True),
        Option("umask", MODE, default="0", module=True),
    ), remote=True, source="FSAL_RGW/main.c",
        handle="handles carry RGW object ids: the same from every node"),
    FsalSchema("PROXY_V4", "nfs-ganesha-proxy-v4", (
        Option("Srv_Addr", IP, required=True, doc="the back-end NFSv4.1 server"),
        Option("NFS_Port", UINT, hi=65535, default="2049"),
        Option("NFS_Service", UINT, default="100003"),
        Option("Retry_SleepTime", UINT, hi=60, default="10"),
        Option("NFS_SendSize", UINT, lo=1024, hi=FSAL_MAXIOSIZE, default=str(MiB + 512)),
        Option("NFS_RecvSize", UINT, lo=1024, hi=FSAL_MAXIOSIZE, default=str(MiB + 512)),
        Option("Use_Privileged_Client_Port", BOOL, default="true"),
        # Ganesha's default 60 makes a RemoveExport block Ganesha's D-Bus thread that long
        # (proxyv4_close_thread closes the socket its receiver polls without waking it, and the
        # receiver's poll waits RPC_Client_Timeout s: FSAL_PROXY_V4/handle.c): see README.
        Option("RPC_Client_Timeout", UINT, lo=1, hi=240, default="60", ha_default="2"),
        Option("link_support", BOOL, default="true", module=True),
        Option("symlink_support", BOOL, default="true", module=True),
        Option("cansettime", BOOL, default="true", module=True),
        Option("maxread", UINT, lo=512, hi=FSAL_MAXIOSIZE - 512, default=str(MiB), module=True),
        Option("maxwrite", UINT, lo=512, hi=FSAL_MAXIOSIZE - 512, default=str(MiB), module=True),
        Option("umask", MODE, default="0", module=True),
        Option("auth_xdev_export", BOOL, default="false", module=True),
    ), remote=True, source="FSAL_PROXY_V4/export.c, FSAL_PROXY_V4/main.c (Debian's build has no "
                           "Kerberos or handle-mapping items)",
        handle="handles wrap the back-end server's handles: the same from every node"),
    FsalSchema("MEM", "nfs-ganesha-mem", (
        Option("Async_Delay", UINT, hi=1000, default="0", in_place=True),
        Option("Async_Type", TOKEN, choices=("inline", "fixed", "random", "random_or_inline"),
               default="inline", in_place=True),
        Option("Async_Stall_Delay", UINT, hi=1000, default="0", in_place=True),
        Option("Inode_Size", UINT, hi=0x200000, default="0", module=True,
               doc="bytes of data kept per file (0: reads return filler)"),
        Option("Up_Test_Interval", UINT, default="0", module=True),
        Option("Async_Threads", UINT, hi=100, default="0", module=True),
        Option("Whence_is_name", BOOL, default="false", module=True),
    ), remote=True, source="FSAL_MEM/mem_export.c, FSAL_MEM/mem_main.c",
        handle="in Ganesha's memory: data and handles do not survive a restart or a failover"),
    FsalSchema("NULL", "nfs-ganesha-nullfs", (), remote=False, stacking=True,
               source="Stackable_FSALs/FSAL_NULL/export.c",
               handle="passes the stacked FSAL's handles through"),
)}


def schema_of(name: str) -> FsalSchema:
    """The schema of the FSAL called `name` (case-insensitive); ValidationError listing the
    supported FSALs otherwise."""
    found = SCHEMAS.get(name.upper()) if isinstance(name, str) else None
    if found is None:
        raise ValidationError("fsal", f"{name!r} is not a supported FSAL (supported: {', '.join(SCHEMAS)})")
    return found


def normalize_value(fsal: str, opt: Option, value: str) -> str:
    """`value` as the canonical text of the option's kind; ValidationError naming the option and
    what it takes. A secret's value is never repeated in a message."""
    shown = REDACTED if opt.secret else repr(value)

    def bad(what: str) -> ValidationError:
        return ValidationError("fsal option", f"{fsal} {opt.key} must be {what}, got {shown}")

    text = value.strip() if opt.kind not in (STR, PATH) else value
    if opt.kind == BOOL:
        low = text.lower()
        if low in ("true", "yes", "on", "1"):
            return "true"
        if low in ("false", "no", "off", "0"):
            return "false"
        raise bad("true or false")
    if opt.kind == UINT or opt.kind == MODE:
        if opt.kind == MODE:
            digits = text[2:] if text.lower().startswith("0o") else text
            if not digits or len(digits) > 4 or any(c not in "01234567" for c in digits):
                raise bad("an octal mode from 0 to 0777")
            num = int(digits, 8)
            if num > 0o777:
                raise bad("an octal mode from 0 to 0777")
            return "0" if num == 0 else f"0{num:o}"
        if not text.isascii() or not text.isdigit() or len(text) > 20:
            raise bad(f"a whole number from {opt.lo} to {opt.hi}")
        num = int(text)
        if not opt.lo <= num <= opt.hi:
            raise bad(f"a whole number from {opt.lo} to {opt.hi}")
        return str(num)
    if opt.kind == TOKEN:
        for choice in opt.choices:
            if choice.lower() == text.lower():
                return choice
        raise bad("one of " + ", ".join(opt.choices))
    if opt.kind == IP:
        import ipaddress

        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            raise bad("an IP address (Ganesha takes no host name here)") from None
        if addr.is_unspecified:
            raise bad("a real address, not the unspecified one")
        return str(addr)
    # STR, PATH: text Ganesha can carry in a double-quoted string (fsal.py already refused
    # control characters and backslashes), within Ganesha's length limits in bytes
    size = len(value.encode("utf-8"))
    if not opt.lo <= size <= opt.hi:
        raise bad(f"{opt.lo} to {opt.hi} bytes long")
    if opt.kind == PATH and not value.startswith("/"):
        raise bad("an absolute path")
    return value

"""A volume's own ganesha.nfsd, on paper (pure): its names, its config file, its listeners,
and what its log says when it dies at start. The effects are ganesha_instance.py.

Facts relied on (nfs-ganesha 4.3, measured on Debian 12 where noted;
docs/research/clients-facts.md section 5):
- `NFS_CORE_PARAM { Dbus_Name_Prefix = X; }` makes the daemon own `X.org.ganesha.nfsd`; a
  prefix that is not `[A-Za-z_][A-Za-z0-9_]*` (at most 255) is ignored with only a log line
  and the default name taken (src/dbus/dbus_server.c, is_valid_dbus_prefix): the prefix is
  therefore derived here from the volume's UUID in that alphabet, and the owner is checked
  after the start.
- `Bind_Addr` is resolved with getaddrinfo(AF_INET6, AI_ADDRCONFIG | AI_V4MAPPED), then
  AF_INET (src/config_parsing/config_parsing.c, convert_inet_addr); with the IPv4 fallback
  the IPv6 socket is bound to the zeros of a sockaddr_in read as a sockaddr_in6: `[::]`, every
  address (src/MainNFSD/nfs_rpc_dispatcher_thread.c, Bind_sockets_V6). That happens when
  the node has no IPv6 address but ::1 (glibc's AI_ADDRCONFIG ignores loopback): measured,
  `*:2049`, and a second instance then dies with "error 98".
- `Clustered = false` keeps the fs recovery backend's records in <RecoveryRoot>/v4recov/
  itself, not in node<N>/ below it (src/SAL/recovery/recovery_fs.c), so the records are
  found whatever node starts the instance next; at start the daemon moves them to v4old/
  and reads them as the clients that may reclaim.
- A bad EXPORT block at start is skipped with its errors logged, the others are served
  (config_parsing.c load_config_from_parse; measured with a missing directory); a syntax
  error in the file is fatal (src/MainNFSD/nfs_main.c).
- `Server_Scope` (NFSV4 block, 1..255 characters) is what an NFSv4.1 client compares before
  it reclaims on another server (RFC 8881 2.10.4; src/Protocols/NFS/nfs4_op_exchange_id.c).
"""
from __future__ import annotations

import ipaddress
import re
import uuid
from pathlib import PurePath

from ..errors import ValidationError
from ..model import Export
from ..record import Record
from .ganesha_conf import RenderOptions, quote, render_export

BUS_NAME_SUFFIX = "org.ganesha.nfsd"
PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")   # is_valid_dbus_prefix, and its length limit
RECOVERY_DIR = "nfs4-recovery"   # the instance's RecoveryRoot, in the volume's state directory
OLD_DIR, RECOV_DIR = "v4old", "v4recov"   # RecoveryOldDir and RecoveryDir, Ganesha's defaults


def volume_uuid_hex(volume_uuid: str) -> str:
    """The 32 hex digits of the volume's UUID; ValidationError when it is none (a registry
    written by hand): the instance's names are made of it, and must be of nothing else."""
    try:
        u = uuid.UUID(volume_uuid)
    except (ValueError, TypeError, AttributeError):
        u = None
    if u is None or str(u) != str(volume_uuid).lower():
        raise ValidationError("volume_uuid", f"{volume_uuid!r} is not a UUID in its canonical form; a volume "
                                             "served by its own Ganesha instance names it after its UUID")
    return u.hex


def dbus_prefix(volume_uuid: str) -> str:
    """`Dbus_Name_Prefix` of the volume's instance: `gha_<32 hex digits>`, one D-Bus name
    element Ganesha accepts (never the silently ignored kind)."""
    prefix = f"gha_{volume_uuid_hex(volume_uuid)}"
    assert PREFIX_RE.fullmatch(prefix)
    return prefix


def bus_name(prefix: str) -> str:
    return f"{prefix}.{BUS_NAME_SUFFIX}"


def server_scope(volume_uuid: str) -> str:
    """`Server_Scope` of the volume's instance: the same on every node that starts it (so its
    NFSv4.1 clients reclaim there), and another for every volume (so a client never takes
    two volumes on one node for one server and trunks them)."""
    return f"ganesha-ha-{uuid.UUID(hex=volume_uuid_hex(volume_uuid))}"


class InstanceConfig(Record, frozen=True):
    """What an instance's config says besides its exports. `ip` is a validated address."""

    ip: str
    port: int
    prefix: str
    recovery_root: str           # the volume's <state dir>/nfs4-recovery, as the daemon sees it
    scope: str
    grace_period: int
    lease_lifetime: int
    plugins_dir: str = ""        # empty: Ganesha's built-in default


EPOCH_FILE = "instance-epoch"   # in the volume's state directory: the last instance's -E


EPOCH_LIMIT = 1 << 32           # Ganesha keeps `nfs_ServerEpoch & 0xFFFFFFFF` in its client ids and stateids
EPOCH_AHEAD = 86400             # an epoch this far past the clock is taken for a corrupt file


def parse_epoch(raw: bytes | str | None, now: float) -> tuple[int | None, str | None]:
    """(the last instance's epoch, None) from the volume's `instance-epoch` file, or (None,
    why it is not used) when it is not one: not a decimal number, at or past 2**32, or more
    than a day past `now` (a corrupt far-future value would push every later epoch towards
    2**32, where they wrap). An empty or missing file is (None, None): the first start.

    Ganesha 4.3 parses `-E` with atoll into a time_t (src/MainNFSD/nfs_main.c) but uses only
    its low 32 bits in client ids and stateids (`nfs_ServerEpoch & 0xFFFFFFFF`,
    src/SAL/nfs4_clientid.c nfs_client_id_get, src/SAL/nfs4_state_id.c nfs4_Check_Stateid):
    an epoch of 2**32 is epoch 0 to a client, and may repeat an old one."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else (raw or "")
    text = text.strip()
    if not text:
        return None, None
    if not text.isascii() or not text.isdigit():
        return None, f"it holds {text[:20]!r}, not a number"
    last = int(text)
    if last >= EPOCH_LIMIT - 1:
        return None, f"it holds {last}, past Ganesha's 32-bit epoch (client ids keep only the low 32 bits)"
    if last > now + EPOCH_AHEAD:
        return None, f"it holds {last}, more than a day past this node's clock ({int(now)})"
    return last, None


def next_epoch(last: int | None, now: float) -> int:
    """The `-E` epoch of the volume's next instance: the time, but always above the last one's.

    Ganesha makes its client ids, its stateids and the write verifier of its COMMITs from this
    epoch (src/SAL/nfs4_clientid.c, nfs4_state_id.c, src/MainNFSD/nfs_init.c), by default the
    second it started. Two instances of one volume started within the same second (a crash and
    a quick restart, or a move to a node whose clock is behind) would then hand out the same
    client ids and stateids, so a client's old ones could name another's new state, and the same
    write verifier, so a client would not resend the UNSTABLE writes the crash lost. Measured:
    a moved client's SEQUENCE on its old session got NFS4ERR_SEQ_MISORDERED from the new instance,
    which had given that very session id to another client."""
    epoch = int(now)
    return max(epoch, last + 1) if last is not None else epoch


BIND_ADDR_RE = re.compile(r"^\s*Bind_Addr\s*=\s*([^;\s]+)\s*;", re.MULTILINE)


def bind_addr(config_text: str) -> str | None:
    """The `Bind_Addr` of an instance's config as render_config wrote it (the address the
    instance that read it listens on), None when there is none."""
    m = BIND_ADDR_RE.search(config_text)
    return m.group(1) if m else None


def check_ip(ip: str | None) -> str:
    """The floating IP in the form rendered into Bind_Addr; ValidationError (field "ip") when
    missing or not an address (a name would be resolved by Ganesha, on each node its way)."""
    if not ip:
        raise ValidationError("ip", "a volume served by its own Ganesha instance needs its floating IP (the agent's "
                                    "ip=, the command line's --ip): the instance binds it (Bind_Addr)")
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise ValidationError("ip", f"is not an IP address: {ip!r}") from None


def render_config(cfg: InstanceConfig, exports: list[Export], mountpoint: str | PurePath,
                  transports: str = "TCP") -> str:
    """The instance's whole config file: its core and NFSv4 parameters, then one EXPORT block
    per export (so that every export is live before the daemon accepts its first client; the
    floating IP is up before it starts).

    NFSv4 only, with NLM, RQUOTA and UDP off: rpcbind holds one port per program, so the
    MOUNT and NLM of a second instance on the node would replace the first's, and both would
    clear the node's statd records at start (SM_UNMON_ALL); RQUOTA would contend for its
    fixed port 875. With NLM off, grace also ends as soon as every client with a record has
    sent RECLAIM_COMPLETE (src/SAL/nfs4_recovery.c, nfs_try_lift_grace)."""
    ip = check_ip(cfg.ip)
    if not PREFIX_RE.fullmatch(cfg.prefix):
        raise ValidationError("dbus_name_prefix", f"{cfg.prefix!r} is not a D-Bus name element Ganesha accepts")
    core = [
        f"    Bind_Addr = {ip};",
        f"    NFS_Port = {int(cfg.port)};",
        "    Protocols = 4;",
        "    Enable_NLM = false;",
        "    Enable_RQUOTA = false;",
        "    Enable_UDP = false;",
        f"    Dbus_Name_Prefix = {cfg.prefix};",
        "    Clustered = false;",
    ]
    if cfg.plugins_dir:
        core.append(f"    Plugins_Dir = {quote(cfg.plugins_dir)};")
    nfsv4 = [
        "    RecoveryBackend = fs;",
        f"    RecoveryRoot = {quote(cfg.recovery_root)};",
        f"    Grace_Period = {int(cfg.grace_period)};",
        f"    Lease_Lifetime = {int(cfg.lease_lifetime)};",
        f"    Server_Scope = {quote(cfg.scope)};",
    ]
    opts = RenderOptions(protocols="4", transports=transports)
    parts = ["# Written by ganesha-ha at each start of this volume's instance: not to be edited.",
             "NFS_CORE_PARAM {", *core, "}", "NFSV4 {", *nfsv4, "}"]
    text = "\n".join(parts) + "\n"
    return text + "".join(render_export(exp, mountpoint, opts) for exp in exports)


# ---- listeners -------------------------------------------------------------------------------

def _addr(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = ipaddress.ip_address(text)
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped if mapped is not None else addr


def is_wildcard(listen_addr: str) -> bool:
    return _addr(listen_addr).is_unspecified


def covers(listen_addr: str, ip: str) -> bool:
    """Does a TCP socket listening on `listen_addr` hold the port for `ip`? The same address
    (an IPv4-mapped one included), or a wildcard: `0.0.0.0` for IPv4, `::` for both (Linux
    IPv6 sockets are dual-stack unless IPV6_V6ONLY, and Ganesha's are)."""
    listen, want = _addr(listen_addr), _addr(ip)
    if listen.is_unspecified:
        return listen.version == 6 or want.version == 4
    return listen == want


# ---- what the log says when the daemon dies at start -------------------------------------------

PORT_IN_USE, NOT_LOCAL, UNRESOLVED, PIDFILE_LOCKED, BUS_DENIED, BUS_TAKEN, FAILED = (
    "port in use", "address not here", "address not resolved", "pid file locked", "bus name denied",
    "bus name taken", "failed")
_CAUSES = (
    (re.compile(r"Cannot bind .* error 98\b"), PORT_IN_USE),             # EADDRINUSE
    (re.compile(r"Cannot bind .* error 99\b"), NOT_LOCAL),               # EADDRNOTAVAIL
    (re.compile(r"No IP address found for"), UNRESOLVED),                # convert_inet_addr
    (re.compile(r"Ganesha already started"), PIDFILE_LOCKED),            # nfs_main.c, the pid file lock
    # src/dbus/dbus_server.c gsh_dbus_pkginit: the bus refused the name (its policy), or
    # another connection has it (the daemon then serves NFS with no D-Bus control)
    (re.compile(r"server bus reg failed .*not allowed to own"), BUS_DENIED),
    (re.compile(r"server failed becoming primary bus owner"), BUS_TAKEN),
)
BUS_FAILED = re.compile(r"server bus reg failed|server failed becoming primary bus owner")
_LEVEL = re.compile(r" :(FATAL|MAJ|CRIT|WARN|EVENT|INFO|DEBUG|M_DBG|F_DBG|NULL) :")   # log_levels[] of log_functions.c
_SEVERE = ("FATAL", "CRIT", "MAJ")


def diagnose(log_lines: list[str]) -> tuple[str, str]:
    """(cause, the line that says it) for a daemon that died at start, from the lines it
    logged: one of the causes above, else FAILED with its last FATAL (else CRIT/MAJ) line,
    else its last line. Lines are Ganesha's "<date> : epoch ... : <host> : <prog>[<thread>]
    <function> :<component> :<LEVEL> :<text>"; the text is what is returned."""
    for rx, cause in _CAUSES:
        for line in log_lines:
            if rx.search(line):
                return cause, _text(line)
    severe = [line for line in log_lines if _level(line) in _SEVERE]
    fatal = [line for line in severe if _level(line) == "FATAL"]
    chosen = (fatal or severe or [line for line in log_lines if line.strip()] or [""])[-1]
    return FAILED, _text(chosen)


def _level(line: str) -> str | None:
    m = _LEVEL.search(line)
    return m.group(1) if m else None


def _text(line: str) -> str:
    """The message of a log line (what follows its level), or the whole line."""
    m = _LEVEL.search(line)
    return line[m.end():].strip() if m else line.strip()

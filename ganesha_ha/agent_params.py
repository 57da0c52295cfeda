"""The agent's parameters: OCF_RESKEY_* read and checked, and the settings one action runs with.

Apart from agent.py because it is the agent's input, not its actions: what Pacemaker passes
(the resource's parameters and the CRM_meta_* of the call) is checked here before anything
touches a volume, and turned into the settings of this one call (the per-call and per-action
time bounds derived from the action's timeout). On every call's path (monitor included), so
its imports are as lazy as agent.py's (tests/server/test_agent_imports.py pins the set).
"""
from __future__ import annotations

import os

from . import ocf
from .servers import BACKENDS, SERVERS

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from .classic import ClassicParams
    from .settings import Settings

_CLASSIC_ONLY = ("clientspec", "options", "fsid")


def check_params(stop: bool = False) -> ClassicParams | None:
    """The parameters alone (no volume, no server, no settings file): ValidationError naming
    the first bad one. Returns the classic mode's parsed parameters (None in volume mode).

    `stop`: only what a stop needs (the server and the directories): a stop withdraws what
    the start stored for those directories, whatever the other parameters say now, so that a
    typo made after the start never keeps an export live (nor fails the stop)."""
    from .errors import ValidationError

    server = ocf.param("server")
    if server not in SERVERS:
        raise ValidationError("server", f"must be {' or '.join(repr(s) for s in SERVERS)}, got {server!r}")
    volume, directory = ocf.param("volume"), ocf.param("directory")
    if not volume and not directory:
        raise ValidationError("volume", "set volume (the shared volume's mount point) or, in classic "
                                        "mode, directory")
    if volume and directory:
        raise ValidationError("directory", "set either volume (volume mode) or directory (classic mode), not both")
    for name, value in (("volume", volume), ("directory", directory)):
        if value and not value.startswith("/"):
            raise ValidationError(name, f"must be an absolute path, got {value!r}")
        raw = os.environ.get(f"OCF_RESKEY_{name}", "")
        if raw != raw.strip():  # stripped, "/vol/data " would export /vol/data, and "/vol/ " all of /vol
            raise ValidationError(name, f"begins or ends with white space: {raw!r}")
    ip = ocf.param("ip")
    if ip:
        import ipaddress

        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise ValidationError("ip", f"is not an IP address: {ip!r}") from None
    if not stop:
        ocf.param_bool("unlock_on_stop", True)
        ocf.param_bool("wait_for_leasetime_on_stop", False)
        bus = ocf.param("bus_address")
        if bus and not bus_address_ok(bus):
            raise ValidationError("bus_address", f"is not a D-Bus address (TRANSPORT:KEY=VALUE,... such as "
                                                 f"unix:path=/run/dbus/system_bus_socket): {bus!r}")
    if not directory:
        if not stop:
            given = [name for name in _CLASSIC_ONLY if ocf.param(name)]
            if given:
                # a clientspec or options beside volume= was silently ignored: the resource
                # looked like it limited the clients while the registry's were served
                raise ValidationError(", ".join(given), "classic-mode parameters (with directory=), not with "
                                                        "volume=: a volume's clients and options are in its "
                                                        "registry (ganesha-ha export add|update)")
        return None
    if stop:
        from .classic import ClassicParams, split_directories

        dirs = split_directories(directory)
        return ClassicParams(directories=dirs, clients=(), fsids=(None,) * len(dirs))
    if not ocf.param("clientspec"):
        raise ValidationError("clientspec", "classic mode (directory=) needs clientspec")
    from .classic import parse_classic

    return parse_classic(directory, ocf.param("clientspec"), ocf.param("options"), ocf.param("fsid"),
                         ocf.param("rmtab_backup"))


def bus_address_ok(address: str) -> bool:
    """Whether `address` has the form of the D-Bus specification's "Server Addresses":
    `transport:key=value,...`, several joined by `;`. libdbus refuses one without a colon
    ("Address does not contain a colon"), which the agent answered with OCF_ERR_GENERIC at
    every start and monitor, on every node. Pure, no regex (the agent's import cost)."""
    for part in address.rstrip(";").split(";"):
        transport, colon, rest = part.partition(":")
        if not colon or not transport[:1].isalpha() or not all(c.isalnum() or c == "-" for c in transport):
            return False
        if rest and not all(k and eq for k, eq, _ in (kv.partition("=") for kv in rest.split(","))):
            return False
    return True


def action_settings() -> Settings:
    from .settings import load_settings

    settings = load_settings(ocf.param("config") or None)
    bus = ocf.param("bus_address")
    if bus:
        settings.ganesha["bus_address"] = bus
    # One hung call (exportfs, D-Bus) must end while the action can still answer with a code
    # and a reason: if Pacemaker's own timeout fires first it kills the agent, and a stop that
    # times out gets the node fenced with nothing in the log to say why.
    # All the D-Bus waits of the action end by one deadline too (ganesha_bus.action_deadline)
    settings.ganesha["action_timeout_ms"] = os.environ.get("OCF_RESKEY_CRM_meta_timeout", "")
    budget = 0.4 * timeout_s(0.0)
    if budget > 0:
        for section, key in (b.call_timeout for b in BACKENDS):
            sec = getattr(settings, section)
            sec[key] = min(float(sec[key]), max(budget, 0.5))
        # a volume's own Ganesha: its start and its SIGTERM grace are waited for in the action
        for key in ("start_timeout", "stop_timeout"):
            settings.instance[key] = min(float(settings.instance[key]), max(budget, 0.5))
    return settings


def timeout_s(default: float) -> float:
    """This action's timeout (Pacemaker's CRM_meta_timeout, ms) in seconds, else `default`."""
    try:
        ms = int(os.environ.get("OCF_RESKEY_CRM_meta_timeout", "") or 0)
    except ValueError:
        ms = 0
    return ms / 1000.0 if ms > 0 else default


def stop_flag(name: str, default: bool) -> bool:
    """A boolean parameter read by a stop: a bad value (the start refused it, so it cannot
    have started anything) is the default, never a failed stop."""
    from .errors import ValidationError

    try:
        return ocf.param_bool(name, default)
    except ValidationError:
        return default

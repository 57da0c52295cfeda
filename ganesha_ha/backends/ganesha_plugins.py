"""Is an FSAL installed on this node? Ganesha's FSAL modules, as files in its plugin directory.

Ganesha loads an FSAL the first time an export names it: src/FSAL/fsal_manager.c:load_fsal
formats `<Plugins_Dir>/libfsal<name in lower case>.so` and dlopens it (measured with 4.3:
"Failed to load FSAL (NOPE) because: No such file or directory" for a missing file).
`Plugins_Dir` is an NFS_CORE_PARAM item (CONF_ITEM_PATH) whose default is the build's
FSAL_MODULE_LOC: /usr/lib/x86_64-linux-gnu/ganesha on Debian 12, where each FSAL is its own
package (nfs-ganesha-vfs, -mem, -nullfs, -proxy-v4, -ceph, -gluster, -gpfs, -rgw). PSEUDO
and MDCACHE are built into ganesha.nfsd itself.

Two FSALs would take ganesha.nfsd down with them when loaded on the wrong node (measured with
Debian's 4.3 packages): GPFS without a mounted GPFS file system (src/FSAL/FSAL_GPFS/gpfsext.c:
LogFatal when it finds none) and RGW without a Ceph configuration (librgw_create aborts the
process). They are refused the same way as a missing module, before Ganesha loads them.

The same config says whether Ganesha derives the file-system id in its handles from the device
number (`fsid_device = true`, src/FSAL/localfs.c:posix_get_fsid): `device_fsid`.

A missing module is a fact about this node, not about the export: another node may have the
package. So it is a ModuleMissingError (a NotInstalledError naming the module), found by a
stat() before anything is sent to the server; what the agent answers then depends on what the
other nodes published of theirs (`loadable_modules`, placement.py): the volume moves to a node
that has every module it needs, or, when none has, runs here without that export. The directory comes
from the settings (`[ganesha] plugins_dir`), else from `Plugins_Dir` in the node's Ganesha
config (`[ganesha] ganesha_config`), else the Debian default.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ModuleMissingError

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..fsal import Fsal

DEFAULT_PLUGINS_DIR = Path("/usr/lib/x86_64-linux-gnu/ganesha")
BUILT_IN = frozenset({"PSEUDO", "MDCACHE"})   # compiled into ganesha.nfsd, no module file
# Debian 12's package of each FSAL whose package name is not nfs-ganesha-<name in lower case>
# (fsal_schema.py knows them all, and that XFS and LUSTRE have none)
DEBIAN_PACKAGES = {"NULL": "nfs-ganesha-nullfs", "PROXY_V4": "nfs-ganesha-proxy-v4"}


def module_file(name: str) -> str:
    """`libfsal<name>.so` with the name in lower case, as load_fsal builds it."""
    return f"libfsal{name.lower()}.so"


def debian_package(name: str) -> str | None:
    """The Debian 12 package that ships FSAL `name` (fsal_schema.py; for a name it does not
    know nfs-ganesha-<name>, with Debian's exceptions); None when Debian 12 has none (XFS, LUSTRE)."""
    from ..fsal_schema import SCHEMAS

    upper = name.upper()
    if upper in SCHEMAS:
        return SCHEMAS[upper].package
    return DEBIAN_PACKAGES.get(upper, f"nfs-ganesha-{upper.lower().replace('_', '-')}")


def core_param(path: Path, key: str) -> str | None:
    """The value of `key` in NFS_CORE_PARAM of the Ganesha config at `path`; None when the file
    cannot be read or parsed, or does not set it (%include'd files are not followed)."""
    from .ganesha_conf_parse import ParseError, parse_config

    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("%"))
    try:
        blocks = parse_config(text)
    except (ParseError, ValueError):
        return None
    for block in blocks:
        if block.name.lower() == "nfs_core_param":
            value = block.get(key)
            if value:
                return value[0]
    return None


def plugins_dir_from_config(path: Path) -> Path | None:
    """`Plugins_Dir` of NFS_CORE_PARAM in the Ganesha config at `path` (core_param)."""
    value = core_param(path, "Plugins_Dir")
    return Path(value) if value else None


def device_fsid(path: Path) -> bool:
    """Whether the Ganesha config at `path` sets NFS_CORE_PARAM fsid_device = true (a boolean in
    Ganesha's lexer: true, yes, on), which puts the device number into every local FSAL's handles."""
    return (core_param(path, "fsid_device") or "").lower() in ("true", "yes", "on")


def plugins_dir(setting: str, ganesha_config: str) -> Path:
    """Where this node's Ganesha loads FSAL modules from: the `plugins_dir` setting when set,
    else Plugins_Dir in `ganesha_config`, else the Debian default."""
    if setting:
        return Path(setting)
    found = plugins_dir_from_config(Path(ganesha_config)) if ganesha_config else None
    return found or DEFAULT_PLUGINS_DIR


def needed_modules(fsal: Fsal) -> frozenset[str]:
    """The FSAL modules `fsal`'s stack loads (names in upper case; PSEUDO and MDCACHE, built
    in, are none). Pure."""
    out = set()
    layer: Fsal | None = fsal
    while layer is not None:
        if layer.name.upper() not in BUILT_IN:
            out.add(layer.name.upper())
        layer = layer.stacked
    return frozenset(out)


def loadable_modules(directory: Path, mounts: Path = Path("/proc/self/mounts"),
                     ceph_conf: str = "/etc/ceph/ceph.conf") -> frozenset[str]:
    """The FSALs whose module is in `directory` (`libfsal<name>.so`, names in upper case) and
    that this node can load as a default export of theirs would (fatal_without): GPFS only
    with a GPFS file system mounted, RGW only with `ceph_conf`. What this node publishes for
    the others (placement.py); one listdir."""
    try:
        names = os.listdir(directory)
    except OSError:
        return frozenset()
    found = {n[len("libfsal"):-len(".so")].upper() for n in names
             if n.startswith("libfsal") and n.endswith(".so") and len(n) > len("libfsal.so")
             and os.path.isfile(directory / n)}
    if "GPFS" in found and not _gpfs_mounted(mounts):
        found.discard("GPFS")
    if "RGW" in found and not os.path.isfile(ceph_conf):
        found.discard("RGW")
    return frozenset(found)


def _gpfs_mounted(mounts: Path) -> bool:
    try:
        return any(len(f) > 2 and f[2] == "gpfs" for f in (line.split() for line in mounts.read_text().splitlines()))
    except OSError:
        return False


def require_fsal(fsal: Fsal, directory: Path, what: str = "",
                 mounts: Path = Path("/proc/self/mounts")) -> None:
    """ModuleMissingError naming the FSAL, the Debian package and the missing file (in that
    order: Pacemaker keeps the first 128 characters of an exit reason), for the first FSAL of
    `fsal`'s stack (NULL on VFS: both) whose module is not in `directory`, or that would make
    ganesha.nfsd exit if loaded here (fatal_without). `what` (e.g. "export /srv/vol1/data")
    says who needs it."""
    who = f"; {what} needs it" if what else ""
    layer: Fsal | None = fsal
    while layer is not None:
        name = layer.name.upper()
        if name not in BUILT_IN:
            path = directory / module_file(name)
            if not os.path.isfile(path):
                package = debian_package(name)
                how = (f"Debian package {package}" if package else
                       "Debian 12 has no package for it: build nfs-ganesha with it")
                raise ModuleMissingError(name, f"FSAL {name} is not installed here ({how})", f"{path} is missing",
                                         how, who)
            problem = fatal_without(layer, mounts)
            if problem:
                raise ModuleMissingError(name, f"FSAL {name} cannot be loaded here", problem, "", who)
        layer = layer.stacked


def fatal_without(layer: Fsal, mounts: Path) -> str | None:
    """What an FSAL needs on the node before Ganesha may load it, because without it the
    module makes ganesha.nfsd exit, taking every export of the node down (measured with
    Debian's 4.3 packages): GPFS without a mounted GPFS file system, RGW without a Ceph
    configuration."""
    if layer.problem:
        return None
    if layer.name == "GPFS":
        if not _gpfs_mounted(mounts):
            return "no GPFS file system is mounted, and FSAL GPFS without one makes ganesha.nfsd exit"
    if layer.name == "RGW":
        conf = layer.effective("ceph_conf") or "/etc/ceph/ceph.conf"
        if not os.path.isfile(conf):
            return f"no Ceph configuration {conf}, and librgw without a reachable cluster makes ganesha.nfsd exit"
    return None

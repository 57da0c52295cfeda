"""Is an FSAL installed on this node? Ganesha's FSAL modules, as files in its plugin directory.

Ganesha loads an FSAL the first time an export names it: src/FSAL/fsal_manager.c:load_fsal
formats `<Plugins_Dir>/libfsal<name in lower case>.so` and dlopens it (measured with 4.3:
"Failed to load FSAL (NOPE) because: No such file or directory" for a missing file).
`Plugins_Dir` is an NFS_CORE_PARAM item (CONF_ITEM_PATH) whose default is the build's
FSAL_MODULE_LOC: /usr/lib/x86_64-linux-gnu/ganesha on Debian 12, where each FSAL is its own
package (nfs-ganesha-vfs, -mem, -nullfs, -proxy-v4, -ceph, -gluster, -gpfs, -rgw). PSEUDO
and MDCACHE are built into ganesha.nfsd itself.

A missing module is a fact about this node, not about the export: another node may have the
package. So it is a NotInstalledError (the resource agent answers OCF_ERR_INSTALLED and the
volume moves), found by a stat() before anything is sent to the server. The directory comes
from the settings (`[ganesha] plugins_dir`), else from `Plugins_Dir` in the node's Ganesha
config (`[ganesha] ganesha_config`), else the Debian default.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import NotInstalledError

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..fsal import Fsal

DEFAULT_PLUGINS_DIR = Path("/usr/lib/x86_64-linux-gnu/ganesha")
BUILT_IN = frozenset({"PSEUDO", "MDCACHE"})   # compiled into ganesha.nfsd, no module file
# Debian 12's package of each FSAL whose package name is not nfs-ganesha-<name in lower case>
DEBIAN_PACKAGES = {"NULL": "nfs-ganesha-nullfs", "PROXY_V4": "nfs-ganesha-proxy-v4"}


def module_file(name: str) -> str:
    """`libfsal<name>.so` with the name in lower case, as load_fsal builds it."""
    return f"libfsal{name.lower()}.so"


def debian_package(name: str) -> str:
    """The Debian package that ships FSAL `name` (nfs-ganesha-<name>, with Debian's exceptions)."""
    upper = name.upper()
    return DEBIAN_PACKAGES.get(upper, f"nfs-ganesha-{upper.lower().replace('_', '-')}")


def plugins_dir_from_config(path: Path) -> Path | None:
    """`Plugins_Dir` of NFS_CORE_PARAM in the Ganesha config at `path`; None when the file
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
            value = block.get("Plugins_Dir")
            if value:
                return Path(value[0])
    return None


def plugins_dir(setting: str, ganesha_config: str) -> Path:
    """Where this node's Ganesha loads FSAL modules from: the `plugins_dir` setting when set,
    else Plugins_Dir in `ganesha_config`, else the Debian default."""
    if setting:
        return Path(setting)
    found = plugins_dir_from_config(Path(ganesha_config)) if ganesha_config else None
    return found or DEFAULT_PLUGINS_DIR


def require_fsal(fsal: Fsal, directory: Path, what: str = "") -> None:
    """NotInstalledError naming the FSAL, the Debian package and the missing file (in that
    order: Pacemaker keeps the first 128 characters of an exit reason), for the first FSAL of
    `fsal`'s stack (NULL on VFS: both) whose module is not in `directory`. `what` (e.g.
    "export /srv/vol1/data") says who needs it."""
    layer: Fsal | None = fsal
    while layer is not None:
        name = layer.name.upper()
        if name not in BUILT_IN:
            path = directory / module_file(name)
            if not os.path.isfile(path):
                who = f"; {what} needs it" if what else ""
                raise NotInstalledError(f"FSAL {name} is not installed here (Debian package {debian_package(name)}): "
                                        f"{path} is missing{who}")
        layer = layer.stacked

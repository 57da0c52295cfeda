"""The OCF agent files `ocf:ganesha-ha:exports` and `ocf:ganesha-ha:notify` (notify_agent.py):
one template for every layout and both agents (`AGENTS`).

Three files per agent come from `agent_text()`: what `ganesha-ha install-agent` writes (a virtual
environment or a checkout), what the Debian package installs (Debian's /usr/bin/python3 and
/usr/lib/python3/dist-packages, debian/rules), and the checkout's own ra/exports (paths found
from the file's own location; tests/package/test_install.py checks that it is this rendering).

The file is a short POSIX shell script that execs the interpreter it names:
- the interpreter and the directory holding the ganesha_ha package are written into it,
  because Pacemaker's executor passes on its own minimal environment (`#!/usr/bin/env python3`
  would find whatever python3 comes first there, without this package);
- -I keeps PYTHONPATH and user site-packages out; -S skips the `site` start-up (about 25 ms
  of .pth processing on every call, see lazysite.py): the script puts the package's directory
  on sys.path itself;
- `meta-data` is printed by the script itself (`cat` of the package's data/<agent>.xml, which
  tests/unit/test_metadata.py holds equal to what ocf.py renders): the document is static,
  and a Python start alone costs about what the shell agent's whole meta-data does (issue 19,
  bench/run section 3); the package's copy, not one written into this file, so that an
  upgraded package never answers with an older agent's parameters;
- when the interpreter or the package is gone (the virtual environment or the checkout was
  moved or removed) or the package cannot be imported, every action answers
  OCF_ERR_INSTALLED (5) with an `ocf-exit-reason:` line, never a traceback, and `meta-data`
  still answers while the package's ocf.py (standard library only) can be read. The shell
  costs about 0.4 ms per call (an exec of dash); it is the only way to answer for an
  interpreter that no longer exists (the kernel would refuse the `#!` line itself).

Why `stop` answers 5 too: without the package nothing can tell what this node exports. A stop
that claimed success would let the next resource of the group unmount a file system that
knfsd or Ganesha may still export (knfsd would then serve the bare mount point directory under
the volume's fsid); failing the stop makes Pacemaker fence the node (or block the resource
without fencing), as resource-agents' `check_binary` does for a missing program at any action.
Pacemaker itself reads a *probe* that answers 5 as "not running here" and keeps the resource
off the node (Pacemaker 2.1, pcmk_xe_mask_probe_failure), so a node that never ran the
resource is never asked to stop it.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .errors import GaneshaHAError, ValidationError
from .fsutil import atomic_write

# The Python run by the agent file: put the package's directory first on sys.path, import the
# agent, and answer 5 with a reason if the import fails (a partial copy, another Python).
# It ends with os._exit once stdout and stderr are flushed: the interpreter's own shutdown
# (tearing down the ~100 modules of a monitor) cost about 2 ms of every call (measured for
# issue 19), and an action leaves nothing behind that it would finish: every file is written
# and closed in a `with` block, syslog(3) sends at once, threads are daemons.
# No single quote in it: it is a single-quoted shell word.
_BOOT = r"""import sys
sys.path.insert(0, sys.argv.pop(1))
try:
    from ganesha_ha.{module} import main
except Exception as exc:
    if sys.argv[1:2] == ["meta-data"]:
        try:
            from ganesha_ha.{meta} import meta_data
        except Exception:
            pass
        else:
            sys.stdout.write(meta_data())
            sys.exit(0)
    why = " ".join(f"{type(exc).__name__}: {exc}".split())
    sys.stderr.write(f"ocf-exit-reason:ganesha-ha cannot be imported by {sys.executable} from {sys.path[0]}: {why}\n")
    sys.exit(5)
rc = main()
try:
    sys.stdout.flush()
    sys.stderr.flush()
finally:
    import os
    os._exit(rc or 0)"""

_META_DATA_ONLY = ("import sys; sys.path.insert(0, sys.argv[1]); "
                   "from ganesha_ha.{meta} import meta_data; sys.stdout.write(meta_data())")

# agent name -> (its module, the standard-library-only module whose meta_data() answers when
# the package cannot be imported, the header's description)
AGENTS = {
    "exports": ("agent", "ocf", "highly available NFS exports of a shared volume (knfsd or NFS-Ganesha)."),
    "notify": ("notify_agent", "notify_agent", "SM_NOTIFY to a volume's NLM clients from its floating IP."),
}

_HEADER = """#!/bin/sh
# ocf:ganesha-ha:{name} - {what}
# {origin}
# Generated from ganesha_ha/install.py, whose docstring says why it is a shell script.
"""

_LOCATE_INSTALLED = "py={py}\nroot={root}\n"

# the checkout's ra/exports: the checkout's .venv, found from this file's own place
_LOCATE_IN_TREE = """case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac
[ -L "$0" ] && here=$(dirname "$(readlink -f "$0")")
py=$here/../.venv/bin/python
root=$here/..
"""

_BODY = """if [ "$1" = meta-data ] && [ -f "$root/ganesha_ha/data/{xml}" ]; then
	exec /bin/cat "$root/ganesha_ha/data/{xml}"
fi
if [ -x "$py" ] && [ -f "$root/ganesha_ha/{module}.py" ]; then
	exec "$py" -IS -c {boot} "$root" "$@"
fi
# The interpreter or the package is gone: OCF_ERR_INSTALLED for every action, stop included.
if [ "$1" = meta-data ] && [ -f "$root/ganesha_ha/{meta}.py" ] && [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 -IS -c {meta_code} "$root" 2>/dev/null && exit 0
fi
printf 'ocf-exit-reason:%s\\n' "ganesha-ha is not installed for this agent: $py or $root/ganesha_ha is missing \\
(moved or removed?); reinstall the package or run 'ganesha-ha install-agent' again" >&2
exit 5
"""

# the directory that holds the ganesha_ha package (a checkout, or site-packages)
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)

# where Debian's python3 finds a packaged module without `site` (see debian/rules)
DEBIAN_PACKAGE_ROOT = "/usr/lib/python3/dist-packages"


def meta_data_file(name: str) -> str:
    """The file in ganesha_ha/data/ holding agent `name`'s meta-data, as its module renders it."""
    return f"{name}.xml"


def agent_text(python: str | None = None, root: str | None = None, origin: str | None = None,
               in_tree: bool = False, name: str = "exports") -> str:
    """The text of agent `name`'s file (a key of AGENTS).

    `python`: absolute path of the interpreter (default: the one running this);
    `root`: directory holding the ganesha_ha package (default: where this module lives);
    `in_tree`: render the checkout's ra/<name> instead (both found from the file's place).
    """
    module, meta, what = AGENTS[name]
    if in_tree:
        locate = _LOCATE_IN_TREE
        origin = origin or "The checkout's entry: runs the package next to it with the checkout's .venv."
    else:
        locate = _LOCATE_INSTALLED.format(py=shlex.quote(python or sys.executable),
                                          root=shlex.quote(root or PACKAGE_ROOT))
        origin = origin or f"Installed by `ganesha-ha install-agent` for {python or sys.executable}."
    boot = _BOOT.replace("{module}", module).replace("{meta}", meta)
    return (_HEADER.format(name=name, what=what, origin=origin) + locate
            + _BODY.replace("{module}", module).replace("{meta}", meta).replace("{xml}", meta_data_file(name))
            .format(boot=shlex.quote(boot), meta_code=shlex.quote(_META_DATA_ONLY.replace("{meta}", meta))))


def install_agent(ocf_root: str = "/usr/lib/ocf", python: str | None = None) -> Path:
    """Write <ocf_root>/resource.d/ganesha-ha/exports and .../notify (mode 0755, atomically);
    return the directory.

    `ocf_root` must be an absolute path to an existing directory (Pacemaker's OCF root):
    a relative one would install under the current directory, where Pacemaker never looks.
    Raises ValidationError for such an `ocf_root`, GaneshaHAError when the file cannot be written.
    """
    if not os.path.isabs(ocf_root) or not os.path.isdir(ocf_root):
        what = "not an absolute path" if not os.path.isabs(ocf_root) else "no such directory"
        raise ValidationError("--ocf-root", f"{what}: {ocf_root!r} (Pacemaker's OCF root, "
                                            "e.g. /usr/lib/ocf, must exist: is resource-agents installed?)")
    directory = Path(ocf_root) / "resource.d" / "ganesha-ha"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        for name in AGENTS:
            target = directory / name
            atomic_write(target, agent_text(python, name=name).encode(), 0o755)
            os.chmod(target, 0o755)
    except OSError as exc:
        raise GaneshaHAError(f"cannot install the agents under {directory}: {exc.strerror}") from None
    return directory

"""Install the OCF agent where Pacemaker looks for `ocf:ganesha-ha:exports`.

The installed file starts with the absolute path of the interpreter running this command
(the virtual environment's): Pacemaker's executor passes on its own minimal environment,
so `#!/usr/bin/env python3` would find whatever python3 comes first there (under systemd
the system one, without this package). -I keeps PYTHONPATH and user site-packages out. -S
skips the `site` start-up (about 25 ms of .pth processing on every call, see lazysite.py):
the file puts the directory that holds this package on sys.path itself, and the actions
that need a third-party module add site-packages when they need it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import GaneshaHAError
from .fsutil import atomic_write

TEMPLATE = """#!{python} -IS
# ocf:ganesha-ha:exports, installed by `ganesha-ha install-agent` for this interpreter.
import sys
sys.path.insert(0, {root!r})
from ganesha_ha.agent import main
sys.exit(main())
"""

# the directory that holds the ganesha_ha package (a checkout, or site-packages)
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def agent_text(python: str | None = None) -> str:
    return TEMPLATE.format(python=python or sys.executable, root=PACKAGE_ROOT)


def install_agent(ocf_root: str = "/usr/lib/ocf", python: str | None = None) -> Path:
    directory = Path(ocf_root) / "resource.d" / "ganesha-ha"
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        target = directory / "exports"
        atomic_write(target, agent_text(python).encode(), 0o755)
        os.chmod(target, 0o755)
    except OSError as exc:
        raise GaneshaHAError(f"cannot install the agent under {directory}: {exc.strerror}") from None
    return target

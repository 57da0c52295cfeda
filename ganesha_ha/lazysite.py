"""Site-packages on demand, for the resource agent started with `python -S`.

The agent's entry points (ra/exports and the file `ganesha-ha install-agent` writes) run the
interpreter with -S and put this package on sys.path themselves: the `site` start-up
(reading every .pth file of the venv and of the system, one of which installs the editable
install's import finder) costs about 25 ms on every call, more than a whole shell agent's
`meta-data`. Most actions need only the standard library and this package. The code that
needs a third-party module (dbus-python for Ganesha, configobj for a settings file the
simple reader in settings.py does not take) calls enable() first, which does then what
`site` would have done at start-up. Without -S, enable() does nothing.
"""
from __future__ import annotations

import sys

_enabled = False


def enable() -> None:
    """Add the site-packages directories (venv and system, as `site` would) once."""
    global _enabled
    if _enabled or not sys.flags.no_site:
        return
    _enabled = True
    import site

    site.main()

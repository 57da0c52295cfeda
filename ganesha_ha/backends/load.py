"""The backend a server name stands for, imported when first asked for.

Apart from the interface (backends/__init__.py), which every backend imports: a module that
picks backends imports them, so it cannot be the one they import.
"""
from __future__ import annotations

from ..servers import INSTANCE, backend_info, check_mode

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..context import VolumeContext
    from ..settings import Settings
    from . import Backend


def get_backend(server: str, settings: Settings, ctx: VolumeContext | None = None) -> Backend:
    """The backend for `server`, configured from `settings`; imports only that backend.
    With `ctx` of a volume whose ganesha_mode is "instance", the backend of that volume's
    own server (the table's `instance` row), bound to it. ValidationError (field "server" or
    "ganesha_mode") for a server or mode the table does not list."""
    info = backend_info(server)
    if ctx is not None and ctx.ganesha_mode == INSTANCE:
        check_mode(server, ctx.ganesha_mode)
        module_name, factory = info.instance   # type: ignore[misc]
        module = __import__(f"{__package__}.{module_name}", fromlist=[factory])
        bound: Backend = getattr(module, factory)(settings, ctx)
        return bound
    # __import__ rather than importlib.import_module: importlib costs ~0.4 ms per agent call
    module = __import__(f"{__package__}.{info.module}", fromlist=[info.factory])
    backend: Backend = getattr(module, info.factory)(settings)
    return backend

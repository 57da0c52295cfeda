"""The backend a server name stands for, imported when first asked for.

Apart from the interface (backends/__init__.py), which every backend imports: a module that
picks backends imports them, so it cannot be the one they import.
"""
from __future__ import annotations

from ..servers import backend_info

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from ..settings import Settings
    from . import Backend


def get_backend(server: str, settings: Settings) -> Backend:
    """The backend for `server`, configured from `settings`; imports only that backend.
    ValidationError (field "server") for a server the table does not list."""
    info = backend_info(server)
    # __import__ rather than importlib.import_module: importlib costs ~0.4 ms per agent call
    module = __import__(f"{__package__}.{info.module}", fromlist=[info.factory])
    backend: Backend = getattr(module, info.factory)(settings)
    return backend

"""The own-server calls of the backends whose server is the node's (knfsd, the shared Ganesha)."""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..context import VolumeContext
    from ..model import Export


class NodeServer:
    """The own-server calls of a backend whose server is the node's (own_server False: it
    runs on its own and serves other volumes too): nothing to start or end. The volume layer
    never calls them then; they make the backend complete against `Backend`."""

    def launch(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        return []

    def stop_server(self, ctx: VolumeContext) -> int:
        return 0

"""A fake NFS server behind the Backend interface, for unit tests of Volume (no root, no daemon).

It behaves like Ganesha at the interface: exports are live by Export_Id, an id can be served
for a path of another volume (a collision), UpdateExport of a live id changes it in place,
withdrawing what is not live is fine. Like Ganesha's pseudo tree (plan.py), an export is
mounted under the live export whose pseudo path is the longest prefix of its own, removing
one with exports mounted under it is refused, and `hidden()` lists the live exports that a
parent added after them hides from clients. Faults are set per test: `refuse` (paths whose apply
or withdraw the server refuses: ApplyError), `warn` (paths whose apply returns a read-back
warning), `missing_fsals` (FSAL names whose module this
node lacks: NotInstalledError for an export using one, at any layer of its stack), `device_fsid`
(the node's server makes device-numbered handles: handle_risks), `hang` (names of the methods the
server does not answer: ServerUnavailableError), `running`, `installed`. `after_stop` calls
are logged in `stops`. Every call that reaches the server is
logged in `calls` as (method, [paths]).

Its one recovery store keeps "the node's clients" in memory (`clients`) and the volume's
copy in `<state dir>/fake-clients`, so a test sees exactly when a copy is saved or restored.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from ganesha_ha.backends import Drift
from ganesha_ha.context import VolumeContext
from ganesha_ha.errors import (ApplyError, IdCollisionError, ModuleMissingError, NotInstalledError,
                               ServerUnavailableError, ValidationError)
from ganesha_ha.model import Export, KnfsdOptions
from ganesha_ha.recovery import RecoveryStore


class FakeStore:
    name = "fake clients"

    def __init__(self) -> None:
        self.clients: list[str] = []   # this node's view of the volume's clients
        self.saves = 0

    @staticmethod
    def path(ctx: VolumeContext) -> Path:
        return ctx.state_dir / "fake-clients"

    def save(self, ctx: VolumeContext) -> bool:
        data = "".join(c + "\n" for c in self.clients)
        path = self.path(ctx)
        if path.exists() and path.read_text() == data:
            return False
        path.write_text(data)
        self.saves += 1
        return True

    def restore(self, ctx: VolumeContext) -> int:
        path = self.path(ctx)
        saved = path.read_text().split() if path.exists() else []
        self.clients = sorted(set(self.clients) | set(saved))
        return len(saved)

    def clear(self, ctx: VolumeContext) -> None:
        self.clients = []


class FakeBackend:
    own_server = False   # a node's shared server

    def __init__(self, name: str = "ganesha"):
        self.name = name
        self.live: dict[int, tuple[str, Export]] = {}   # Export_Id -> (absolute path, export)
        self.mounted_under: dict[int, int | None] = {}   # Export_Id -> the Export_Id it is mounted under
        self.running = True
        self.installed = True
        self.device_fsid = False                # the node's server makes device-numbered handles
        self.refuse: set[str] = set()
        self.warn: set[str] = set()     # paths whose apply the read-back warns about
        self.missing_fsals: set[str] = set()
        # what the other nodes published of their FSAL modules (Backend.other_nodes_have);
        # None: no cluster. `others_asked` counts the queries (a healthy monitor asks none)
        self.others: dict[str, frozenset[str] | None] | None = None
        self.others_asked = 0
        self.barred: set[str] = set()   # nodes where the cluster may not start the volume (may_run)
        self.stops: list[tuple[bool, bool, float]] = []
        self.hang: set[str] = set()
        self.calls: list[tuple[str, list[str]]] = []
        self.store = FakeStore()
        self.graces: list[int] = []

    def reach(self) -> str | None:
        return None

    def fall_back(self, recorded: str) -> str | None:
        return None

    # ---- helpers for tests ------------------------------------------------------------
    def serve_foreign(self, export_id: int, path: str) -> None:
        """Another volume's export, served by this node under `export_id`."""
        self.live[export_id] = (path, Export(path="", export_id=export_id, knfsd=KnfsdOptions("1"), pseudo="/foreign",
                                             clients=("*",)))

    def _parent(self, pseudo: str) -> int | None:
        above = [(len(e.pseudo), i) for i, (_, e) in self.live.items() if pseudo.startswith(e.pseudo + "/")]
        return max(above)[1] if above else None

    def hidden(self) -> list[str]:
        """Pseudo paths of live exports that clients cannot reach: mounted before the export
        now above them."""
        return sorted(e.pseudo for i, (_, e) in self.live.items()
                      if self.mounted_under.get(i) != self._parent(e.pseudo))

    def live_exports(self, ctx: VolumeContext) -> dict[str, Export]:
        """What is live for this volume, by relative path."""
        root = str(ctx.mountpoint)
        return {exp.path: exp for path, exp in self.live.values() if path == self._abs(ctx, exp)
                and (path == root or path.startswith(root + "/"))}

    @staticmethod
    def _abs(ctx: VolumeContext, exp: Export) -> str:
        if exp.remote:
            return exp.path
        return str(ctx.mountpoint / exp.path) if exp.path else str(ctx.mountpoint)

    def _answer(self, method: str) -> None:
        if not self.running:
            raise ServerUnavailableError("the fake server is not running")
        if method in self.hang:
            raise ServerUnavailableError(f"the fake server did not answer {method} within 1 s")

    # ---- the Backend interface ------------------------------------------------------------
    def check_installed(self) -> None:
        if not self.installed:
            raise NotInstalledError("the fake server is not installed")

    def check_node(self) -> list[str]:
        return []

    def node_config_warnings(self, mountpoint: str, exports: Sequence[Export]) -> list[str]:
        return []

    def is_running(self) -> bool:
        return self.running

    def require_running(self) -> None:
        self.check_installed()
        self._answer("require_running")

    def check_export(self, exp: Export, mountpoint: Path) -> None:
        if "\\" in exp.pseudo:
            raise ValidationError("pseudo", "the fake server cannot carry a backslash")

    def check_installed_for(self, exp: Export) -> None:
        missing = sorted({layer.name for layer in exp.ganesha.fsal.layers()} & self.missing_fsals)
        if missing:
            raise ModuleMissingError(missing[0], f"FSAL {missing[0]} is not installed on this node", "",
                                     f"package fake-{missing[0].lower()}")

    def needs(self, exp: Export) -> frozenset[str]:
        return frozenset(layer.name for layer in exp.ganesha.fsal.layers()) - {"PSEUDO", "MDCACHE"}

    def other_nodes_have(self) -> dict[str, frozenset[str] | None] | None:
        self.others_asked += 1
        return None if self.others is None else dict(self.others)

    def may_run(self, nodes: Sequence[str]) -> list[str]:
        return [n for n in nodes if n not in self.barred]

    def handle_risks(self, exports: Sequence[Export]) -> list[str]:
        return [f"device-numbered handles for {e.pseudo}" for e in exports if self.device_fsid and not e.remote]

    def action(self):
        return contextlib.nullcontext()

    def served_ids(self) -> set[int]:
        self._answer("served_ids")
        return set(self.live)

    def served_paths(self, ids: Iterable[int]) -> dict[int, str]:
        self._answer("served_paths")
        return {i: self.live[i][0] for i in ids if i in self.live}

    def live_paths(self, ctx: VolumeContext, exports: Sequence[Export]) -> dict[str, bool]:
        self._answer("live_paths")
        served = {path for path, _ in self.live.values()}
        return {e.path: self._abs(ctx, e) in served for e in exports}

    def drift(self, ctx: VolumeContext, exports: Sequence[Export]) -> Drift:
        self._answer("drift")
        drift = Drift(stray=self._strays(ctx, exports))
        for exp in exports:
            got = self.live.get(exp.export_id)
            if got is None:
                drift.missing.append(exp)
            elif got[0] != self._abs(ctx, exp):
                drift.foreign.append(f"Export_Id {exp.export_id} is live for {got[0]}")
                drift.elsewhere.append(exp)
            elif got[1] != exp:
                drift.changed.append(exp)
        return drift

    def check_collisions(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        self._answer("check_collisions")
        for exp in exports:
            got = self.live.get(exp.export_id)
            if got is not None and got[0] != self._abs(ctx, exp):
                raise IdCollisionError(f"Export_Id {exp.export_id} is already served for {got[0]}")

    def apply(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        self.calls.append(("apply", [e.path for e in exports]))
        self._answer("apply")
        for exp in exports:
            got = self.live.get(exp.export_id)
            if got is not None and got[0] != self._abs(ctx, exp):
                raise IdCollisionError(f"Export_Id {exp.export_id} is already served for {got[0]}")
            if exp.path in self.refuse:
                raise ApplyError(f"the fake server refused {exp.path or '/'}")
            if got is None:
                self.mounted_under[exp.export_id] = self._parent(exp.pseudo)
            self.live[exp.export_id] = (self._abs(ctx, exp), exp)
        return [f"{e.path}: a client does not resolve here" for e in exports if e.path in self.warn]

    def withdraw(self, ctx: VolumeContext, exports: Sequence[Export]) -> None:
        self.calls.append(("withdraw", [e.path for e in exports]))
        self._answer("withdraw")
        for exp in exports:
            got = self.live.get(exp.export_id)
            if got is None or got[0] != self._abs(ctx, exp):
                continue
            if exp.path in self.refuse:
                raise ApplyError(f"the fake server refused to remove {exp.path or '/'}")
            if any(self.mounted_under.get(i) == exp.export_id for i in self.live):
                raise ApplyError(f"the fake server cannot remove {exp.pseudo}: it has submounts")
            del self.live[exp.export_id]

    def _strays(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[int]:
        ours = {e.export_id for e in exports}
        root = str(ctx.mountpoint)
        return sorted(i for i, (path, _) in self.live.items()
                      if i not in ours and (path == root or path.startswith(root + "/")))

    def withdraw_stray(self, ctx: VolumeContext, exports: Sequence[Export]) -> int:
        self._answer("withdraw_stray")
        stray = self._strays(ctx, exports)
        for export_id in stray:
            del self.live[export_id]
        return len(stray)

    def recovery_stores(self, ctx: VolumeContext) -> list[RecoveryStore]:
        return [self.store]

    def launch(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        return []

    def stop_server(self, ctx: VolumeContext) -> int:
        return 0

    def after_stop(self, ctx: VolumeContext, unlock_fs: bool, unlock_ip: bool, lease_wait: float) -> list[str]:
        self.stops.append((unlock_fs, unlock_ip, lease_wait))
        return ["fake locks released"] if unlock_fs else []

    def after_restore(self, ctx: VolumeContext, records: int) -> str | None:
        if not records:
            return None
        self.graces.append(records)
        return f"grace for {records} clients"


class FakeInstance(FakeBackend):
    """A server of the volume's own (instance mode), as ganesha_instance.py is at the interface:
    down until `launch`, which starts it with the exports it is given live (but those in
    `skip_at_launch`, as Ganesha skips a block it cannot use), and `stop_server` ends it with all
    its exports. `launches` and `stops_server` log the calls."""

    own_server = True

    def __init__(self, name: str = "ganesha"):
        super().__init__(name)
        self.running = False
        self.skip_at_launch: set[str] = set()
        self.launches: list[list[str]] = []
        self.server_stops = 0

    def launch(self, ctx: VolumeContext, exports: Sequence[Export]) -> list[str]:
        self.launches.append([e.path for e in exports])
        if self.running:
            return ["already running"]
        self.running = True
        for exp in exports:
            if exp.path not in self.skip_at_launch:
                self.live[exp.export_id] = (self._abs(ctx, exp), exp)
        return ["started"]

    def stop_server(self, ctx: VolumeContext) -> int:
        self.server_stops += 1
        served, self.running = len(self.live) if self.running else 0, False
        self.live.clear()
        return served

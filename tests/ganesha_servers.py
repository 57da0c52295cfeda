"""Real ganesha.nfsd servers for the protocol clients' tests (lab/nfs/).

`V4Lab`: a private bus, one export directory on 127.0.0.1 and the Ganeshas started on them
one at a time (a restart is a new GaneshaDaemon on the same port and recovery root).
`TunedGanesha`: one with lines added to NFS_CORE_PARAM. The few other settings a test changes
(NFSv4 Server_Scope/Server_Owner, NFSv3 with NLM) are the
lab daemon's own (`GaneshaDaemon` fields, written by `core_config` into its one NFSV4
block: a second NFSV4 block would reset the first one's Grace_Period to 90, measured).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import free_port

from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus, in_grace
from ganesha_ha.lab.nfs.client import Nfs4Client

PSEUDO = "/a"
NEEDS_GANESHA = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run ganesha.nfsd"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None and
                       not Path("/usr/bin/ganesha.nfsd").exists(),
                       reason="nfs-ganesha is not installed"),
]


def grace_held(bus: str, limit: float) -> tuple[float, float]:
    """(held, lifted), monotonic s: when the last get_grace that found grace on was sent (it
    held at least until then; the call's own start when the first answer is "off"), when the
    first that found it off answered (inf if grace held `limit` s). On a loaded machine a
    D-Bus round trip can take longer than the slack a bound on the lift has: `held` is what
    such a bound checks, as it never runs late ("still in grace at X" is only seen if grace
    held past X)."""
    t0 = held = time.monotonic()
    while True:
        sent = time.monotonic()
        if not in_grace(bus):
            return held, time.monotonic()
        held = sent
        if held - t0 > limit:
            return held, float("inf")
        time.sleep(0.05)


def export_block(export_id: int, path: Path, *, pseudo: str = PSEUDO, protocols: str = "4",
                 clients: str = "127.0.0.1") -> str:
    return (f'EXPORT {{ Export_Id = {export_id}; Path = "{path}"; Pseudo = "{pseudo}"; '
            f"Access_Type = None; Squash = No_Root_Squash; Protocols = {protocols}; "
            f"FSAL {{ Name = VFS; }} CLIENT {{ Clients = {clients}; Access_Type = RW; }} }}\n")


def _replace(text: str, old: str, new: str) -> str:
    if old not in text:
        raise AssertionError(f"lab core config no longer holds {old!r}: update tests/ganesha_servers.py")
    return text.replace(old, new, 1)


@dataclass
class TunedGanesha(GaneshaDaemon):
    """A GaneshaDaemon with `core` lines added to its NFS_CORE_PARAM block (e.g.
    `mount_path_pseudo = true`); NLM and the NFSv4 scope/owner are GaneshaDaemon's own."""

    core: tuple[str, ...] = ()

    def write_config(self) -> Path:
        path = super().write_config()
        if self.core:
            text = _replace(path.read_text(), "NFS_CORE_PARAM {\n",
                            "NFS_CORE_PARAM {\n" + "".join(f"    {x};\n" for x in self.core))
            path.write_text(text)
        return path


@dataclass
class V4Lab:
    """A private bus, one export directory and the Ganeshas started on them (one at a time)."""

    root: Path
    port: int
    bus: PrivateBus
    daemons: list[GaneshaDaemon] = field(default_factory=list)
    clients: list[Nfs4Client] = field(default_factory=list)

    @property
    def export_dir(self) -> Path:
        return self.root / "exp"

    @property
    def recovery(self) -> Path:
        return self.root / "recovery"

    def start(self, export_id: int = 7, *, grace_period: int = 5, server_scope: str | None = None,
              server_owner: str | None = None, lease_lifetime: int | None = None) -> GaneshaDaemon:
        n = len(self.daemons)
        g = GaneshaDaemon(self.root / f"ganesha{n}", self.bus, port=self.port, grace_period=grace_period,
                          recovery_root=self.recovery, server_scope=server_scope, server_owner=server_owner,
                          lease_lifetime=lease_lifetime,
                          extra_config=export_block(export_id, self.export_dir))
        self.daemons.append(g)
        return g.start()

    def client(self, minorversion: int = 0, **kw) -> Nfs4Client:
        c = Nfs4Client("127.0.0.1", self.port, timeout=3.0, minorversion=minorversion, **kw)
        self.clients.append(c)
        c.connect()
        return c

    def records(self) -> list[str]:
        """The client records in the recovery root (directory names `<addr>-(<len>:<owner>)`)."""
        return sorted(p.name for p in self.recovery.rglob("*") if "-(" in p.name)

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        for g in self.daemons:
            g.stop()
        self.bus.stop()


def v4lab(tmp_path: Path, content: bytes):
    """Generator for a fixture: a V4Lab whose export holds `file` with `content`."""
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "file").write_bytes(content)
    bus = PrivateBus(tmp_path / "bus").start()
    lab = V4Lab(tmp_path, free_port(), bus)
    try:
        yield lab
    finally:
        lab.stop()
    assert all(g.proc is None for g in lab.daemons)

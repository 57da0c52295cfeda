"""Real ganesha.nfsd servers for the protocol clients' tests (lab/nfs/).

`V4Lab`: a private bus, one export directory on 127.0.0.1 and the Ganeshas started on them
one at a time (a restart is a new GaneshaDaemon on the same port and recovery root).
`TunedGanesha`: a lab GaneshaDaemon whose generated config is changed in the few places
a test needs (NFSv4 Server_Scope/Server_Owner, NFSv3 with NLM). The change is made on
`core_config`'s text and fails loudly if that text no longer holds what it replaces:
Ganesha itself cannot be told twice (a second NFSV4 block resets the first one's
Grace_Period to 90, measured).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import free_port

from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus
from ganesha_ha.lab.nfs.client import Nfs4Client

PSEUDO = "/a"
NEEDS_GANESHA = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run ganesha.nfsd"),
    pytest.mark.skipif(shutil.which("ganesha.nfsd") is None and
                       not Path("/usr/bin/ganesha.nfsd").exists(),
                       reason="nfs-ganesha is not installed"),
]


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
    """A GaneshaDaemon with `nfsv4` lines added to its NFSV4 block, `core` lines to its
    NFS_CORE_PARAM block (e.g. `mount_path_pseudo = true`) and, with `nlm`, NFSv3, MOUNT and
    NLM on (Protocols 3 and 4; NLM needs rpcbind and rpc.statd beside it)."""

    nfsv4: tuple[str, ...] = ()
    core: tuple[str, ...] = ()
    nlm: bool = False

    def write_config(self) -> Path:
        path = super().write_config()
        text = path.read_text()
        if self.core:
            text = _replace(text, "NFS_CORE_PARAM {\n",
                            "NFS_CORE_PARAM {\n" + "".join(f"    {x};\n" for x in self.core))
        if self.nfsv4:
            text = _replace(text, "NFSV4 {\n", "NFSV4 {\n" + "".join(f"    {x};\n" for x in self.nfsv4))
        if self.nlm:
            text = _replace(text, "    Protocols = 4;\n", "    Protocols = 3, 4;\n")
            text = _replace(text, "    Enable_NLM = false;\n", "    Enable_NLM = true;\n")
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

    def start(self, export_id: int = 7, *, grace_period: int = 5,
              nfsv4: tuple[str, ...] = ()) -> GaneshaDaemon:
        n = len(self.daemons)
        g = TunedGanesha(self.root / f"ganesha{n}", self.bus, port=self.port, grace_period=grace_period,
                         recovery_root=self.recovery, nfsv4=nfsv4,
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

"""The lab's shared-storage machine: a one-node GlusterFS or Ceph cluster on the lab's network,
for `lab --direct --fsal GLUSTER|CEPH` (an FSAL whose data is not on the volume).

The machine is a lab node without Ganesha (node.py's holder: its own network namespace on the
lab's switch, a private mount namespace in which the cluster's state directories are the lab's
own), so the cluster is reachable from both NFS nodes at the storage address, and nothing of it
touches the host's /var/lib/glusterd or /etc/ceph. Its daemons daemonize themselves; every
process found in the machine's network namespace is recorded with its start time, so the
teardown and `lab down` end each one by PID.

Programs: GlusterFS 10 (`glusterfs-server`), Ceph 16 (`ceph-mon ceph-mgr ceph-osd ceph-mds`),
Debian 12 packages; `missing()` says which are absent so the caller can skip with the reason.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from ..linux import proc_starttime
from .node import LabNode
from .procs import wait_until

GLUSTER_VOLUME = "gv0"


class StorageNode(LabNode):
    """A lab machine that serves shared storage (no Ganesha, no bus)."""

    def adopt(self) -> list[int]:
        """Record every process in this machine's network namespace (daemons that forked away
        from what we started) so that stop() and `lab down` end them by PID."""
        try:
            mine = os.stat(f"/proc/{self.holder_pid}/ns/net").st_ino
        except (OSError, TypeError):
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino != mine:
                    continue
            except OSError:
                continue
            if pid not in self._started:
                self._started[pid] = proc_starttime(pid)
                found.append(pid)
        return found

    def stop(self) -> None:
        self.adopt()
        super().stop()


class GlusterStorage:
    """glusterd and one single-brick volume, in a StorageNode."""

    programs = ("glusterd", "gluster")
    package = "glusterfs-server"
    title = "GlusterFS"

    def __init__(self, node: StorageNode):
        self.node = node
        self.root = node.workdir / "gluster"
        self.brick = Path("/mnt/brick")          # inside the machine: root/data bound on /mnt

    @classmethod
    def missing(cls) -> list[str]:
        return [p for p in cls.programs if shutil.which(p) is None]

    @classmethod
    def binds(cls, workdir: Path) -> list[tuple[str, str]]:
        root = workdir / "gluster"
        for d in ("lib", "log", "data", "run"):
            (root / d).mkdir(parents=True, exist_ok=True)
        # glusterd keeps its state in /var/lib/glusterd, logs in /var/log/glusterfs and its
        # sockets in /run: all the machine's own; the brick is under /mnt. /run goes last: it
        # hides the lab's own directory (under /run) inside the machine.
        return [(str(root / "lib"), "/var/lib/glusterd"), (str(root / "log"), "/var/log/glusterfs"),
                (str(root / "data"), "/mnt"), (str(root / "run"), "/run")]

    def gluster(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.node.run(["gluster", "--mode=script", *args], check=check, timeout=120)

    def start(self) -> dict[str, str]:
        """Start glusterd, create and start the volume; returns the GLUSTER FSAL's options."""
        (self.root / "data" / "brick").mkdir(parents=True, exist_ok=True)
        self.node.run(["glusterd", "--log-level", "WARNING"], check=True)
        self.node.adopt()
        if not wait_until(lambda: self.gluster("volume", "list", check=False).returncode == 0, 30, 0.3):
            raise RuntimeError("glusterd did not answer within 30 s")
        self.gluster("volume", "create", GLUSTER_VOLUME, f"{self.node.addr}:{self.brick}", "force")
        self.gluster("volume", "start", GLUSTER_VOLUME)
        # the brick process comes up after the start returns
        wait_until(lambda: "Y" in self.gluster("volume", "status", GLUSTER_VOLUME, check=False).stdout, 30, 0.3)
        time.sleep(0.5)
        self.node.adopt()
        return {"volume": GLUSTER_VOLUME, "hostname": self.node.addr}

    def read(self, name: str) -> bytes | None:
        """A file written at the export's root, as the brick holds it (None when absent)."""
        try:
            return (self.root / "data" / "brick" / name).read_bytes()
        except OSError:
            return None


class CephStorage:
    """A one-node Ceph cluster (1 mon, 1 mgr, 1 memstore OSD, 1 MDS; CephFS "cephfs") in a
    StorageNode, bootstrapped by hand as Ceph's vstart.sh does. Every path (data, sockets,
    logs, keyrings) is under the machine's directory, named in its ceph.conf, which the NFS nodes
    read too (the CEPH FSAL's module option ceph_conf); cephx is on, and the FSAL is given the
    client.admin key by file (secret_access_key=@FILE), as a user would."""

    programs = ("ceph-mon", "ceph-mgr", "ceph-osd", "ceph-mds", "ceph", "ceph-authtool", "monmaptool")
    package = "ceph-mon ceph-mgr ceph-osd ceph-mds ceph-common"
    title = "Ceph cluster"

    def __init__(self, node: StorageNode):
        self.node = node
        self.root = node.workdir / "ceph"
        self.conf = self.root / "ceph.conf"

    @classmethod
    def missing(cls) -> list[str]:
        return [p for p in cls.programs if shutil.which(p) is None]

    @classmethod
    def binds(cls, workdir: Path) -> list[tuple[str, str]]:
        return []   # every path is in ceph.conf

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.node.run(list(argv), check=check, timeout=120)

    def ceph(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("ceph", "-c", str(self.conf), "--connect-timeout", "20", *args, check=check)

    def start(self) -> dict[str, str]:
        import uuid

        r, addr = self.root, self.node.addr
        for d in ("mon/ceph-a", "mgr/ceph-x", "osd/ceph-0", "mds/ceph-a", "run", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        self.conf.write_text("\n".join([
            "[global]",
            f"fsid = {fsid}", f"mon host = v2:{addr}:3300/0,v1:{addr}:6789/0", f"public addr = {addr}",
            f"keyring = {r}/$name.keyring", f"admin socket = {r}/run/$name.asok",
            f"log file = {r}/log/$name.log", f"pid file = {r}/run/$name.pid", f"run dir = {r}/run",
            "auth cluster required = cephx", "auth service required = cephx", "auth client required = cephx",
            "osd pool default size = 1", "osd pool default min size = 1", "osd crush chooseleaf type = 0",
            "mon allow pool size one = true", "mon warn on pool no redundancy = false",
            "mon data avail warn = 1", "mon data avail crit = 0", "osd objectstore = memstore",
            "memstore device bytes = 1073741824",
            f"mon data = {r}/mon/$cluster-$id", f"mgr data = {r}/mgr/$cluster-$id",
            f"osd data = {r}/osd/$cluster-$id", f"mds data = {r}/mds/$cluster-$id",
            "mon initial members = a", ""]))
        admin, mon = r / "client.admin.keyring", r / "mon.keyring"
        self.run("ceph-authtool", "--create-keyring", str(mon), "--gen-key", "-n", "mon.", "--cap", "mon", "allow *")
        self.run("ceph-authtool", "--create-keyring", str(admin), "--gen-key", "-n", "client.admin",
                 "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mds", "allow *",
                 "--cap", "mgr", "allow *")
        self.run("ceph-authtool", str(mon), "--import-keyring", str(admin))
        self.run("monmaptool", "--create", "--addv", "a", f"[v2:{addr}:3300,v1:{addr}:6789]", "--fsid", fsid,
                 str(r / "monmap"))
        self.run("ceph-mon", "-c", str(self.conf), "--mkfs", "-i", "a", "--monmap", str(r / "monmap"),
                 "--keyring", str(mon))
        self.run("ceph-mon", "-c", str(self.conf), "-i", "a")
        self.node.adopt()
        if not wait_until(lambda: self.ceph("mon", "stat", check=False).returncode == 0, 60, 0.5):
            raise RuntimeError("ceph-mon did not answer within 60 s")
        self.ceph("auth", "get-or-create", "mgr.x", "mon", "allow profile mgr", "osd", "allow *", "mds", "allow *",
                  "-o", str(r / "mgr.x.keyring"))
        self.run("ceph-mgr", "-c", str(self.conf), "-i", "x")
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).stdout.strip()
        self.ceph("auth", "get-or-create", f"osd.{osd_id}", "mon", "allow profile osd", "mgr", "allow profile osd",
                  "osd", "allow *", "-o", str(r / f"osd.{osd_id}.keyring"))
        self.run("ceph-osd", "-c", str(self.conf), "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid)
        self.run("ceph-osd", "-c", str(self.conf), "-i", osd_id)
        self.ceph("osd", "pool", "create", "cephfs_metadata", "8")
        self.ceph("osd", "pool", "create", "cephfs_data", "8")
        self.ceph("fs", "new", "cephfs", "cephfs_metadata", "cephfs_data")
        self.ceph("auth", "get-or-create", "mds.a", "mon", "allow profile mds", "osd", "allow rw tag cephfs *=*",
                  "mds", "allow", "mgr", "allow profile mds", "-o", str(r / "mds.a.keyring"))
        self.run("ceph-mds", "-c", str(self.conf), "-i", "a")
        self.node.adopt()
        if not wait_until(lambda: "up:active" in self.ceph("mds", "stat", check=False).stdout, 90, 0.5):
            raise RuntimeError(f"CephFS did not become active within 90 s: "
                               f"{self.ceph('status', check=False).stdout[-800:]}")
        self.node.adopt()
        key = self.ceph("auth", "print-key", "client.admin").stdout.strip()
        secret = r / "admin.secret"
        secret.write_text(key + "\n")
        secret.chmod(0o600)
        return {"user_id": "admin", "filesystem": "cephfs", "secret_access_key": f"@{secret}",
                "ceph_conf": str(self.conf)}

    def read(self, name: str) -> bytes | None:
        """A file at the CephFS root, read through a Ceph client (rados, not NFS)."""
        return None   # the lab checks I/O through Ganesha and the handles; CephFS keeps no host path


STORAGE = {"gluster": GlusterStorage, "ceph": CephStorage}

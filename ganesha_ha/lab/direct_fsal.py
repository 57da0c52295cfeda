"""The direct lab's `--fsal` export: one more export with the FSAL given, proved across moves.

For `--fsal NAME(key=value,...)` the direct lab adds an export with that FSAL (the CLI's
syntax) beside its three VFS ones. GLUSTER or CEPH without their server options get a
one-node GlusterFS or Ceph cluster on the lab's storage machine "s" (storage.py). After each
move the export must keep its Export_Id and be served on the new node; unless it is MEM
(whose data lives in the old Ganesha's memory) its old handle must read the same data.
`FsalExport` is a part of `DirectLab` (direct_lab.py), kept apart as a job of its own; it
uses the lab's `opts`, `net`, `mountpoint`, `report`, `say`, `client`, `registry()`,
`live_ids()` and `save_state()`.
"""
from __future__ import annotations

import time
from typing import Any

from .nfs.nfs4 import NfsError
from .node import LabNode

FSAL_PSEUDO = "/lab/fsal"     # the --fsal export's pseudo path
FSAL_PATH = "/lab-fsal"       # its path in the FSAL's own namespace (a remote FSAL)
FSAL_DIR = "fsal"             # its directory on the volume (a local FSAL)


def storage_kind(spec: str | None) -> str | None:
    """"gluster" or "ceph" when `--fsal` names that FSAL without its server (GLUSTER without
    hostname, CEPH without ceph_conf): the lab then runs a one-node cluster for it."""
    if not spec:
        return None
    name = spec.split("(", 1)[0].strip().upper()
    low = spec.lower()
    if name == "GLUSTER" and "hostname" not in low:
        return "gluster"
    if name == "CEPH" and "ceph_conf" not in low:
        return "ceph"
    return None


def complete_spec(spec: str, options: dict[str, str]) -> str:
    """`spec` with the storage's connection options added (`GLUSTER` → `GLUSTER(volume=gv0,...)`);
    a value `@FILE` stays a file reference."""
    extra = ",".join(f"{k}={v}" if v.startswith("@") else f'{k}="{v}"' for k, v in options.items())
    spec = spec.strip()
    if spec.endswith(")"):
        inner = spec[spec.index("(") + 1:-1].strip()
        return f"{spec[:spec.index('(')]}({inner + ',' if inner else ''}{extra})"
    return f"{spec}({extra})"



class FsalExport:
    """The --fsal part of DirectLab (see the module doc)."""

    def start_storage(self) -> None:
        """The one-node cluster a GLUSTER or CEPH export without its own server needs, on the
        lab's shared-storage machine "s"; its options complete the --fsal spec."""
        from .storage import STORAGE, StorageNode

        cls = STORAGE[self.storage_kind]
        workdir = self.workdir / "node-s"
        workdir.mkdir(parents=True, exist_ok=True)
        self.storage_node = StorageNode("s", self.net.ns("s"), workdir, self.net.addr("s"), run_ganesha=False,
                                        binds=cls.binds(workdir))
        try:
            self.storage_node.start_holder()
            self.storage = cls(self.storage_node)
            t = time.monotonic()
            options = self.storage.start()
        finally:
            self.save_state()
        self.fsal_spec = complete_spec(self.opts.fsal or "", options)
        self.report["storage"] = {"kind": self.storage_kind, "address": self.storage_node.addr,
                                  "start_s": round(time.monotonic() - t, 2)}
        self.say(f"storage: one-node {cls.title} on {self.storage_node.addr} "
                 f"({time.monotonic() - t:.1f} s)")

    def add_fsal_export(self, node: LabNode) -> None:
        """One more export with the FSAL given (`--fsal`): at FSAL_PATH in its own namespace, or
        the directory FSAL_DIR of the volume for a local FSAL."""
        from ..fsal import parse_spec, read_value_file

        spec = getattr(self, "fsal_spec", None) or self.opts.fsal
        fsal = parse_spec(spec, read_value_file)
        # a CephFS export's path must exist in CephFS: its root, in the lab's new file system
        where = ("/" if fsal.base.name == "CEPH" else FSAL_PATH) if fsal.remote else FSAL_DIR
        if not fsal.remote:
            node.run(["mkdir", "-p", str(self.mountpoint / FSAL_DIR)], check=True)
        node.cli("export", "add", str(self.mountpoint), where, "--client", f"{self.net.subnet}.0/24(rw)",
                 "--squash", "no_root_squash", "--pseudo", FSAL_PSEUDO, "--fsal", spec)
        self.fsal = fsal
        self.report["fsal"] = {"spec": str(fsal), "path": where, "pseudo": FSAL_PSEUDO,
                               "keeps_data": fsal.base.name != "MEM"}
        self.say(f"FSAL export: {FSAL_PSEUDO} -> {fsal.base.name}:{where} ({fsal})")

    def fsal_probe_before(self) -> None:
        """The client writes a file through the FSAL export and keeps its handle."""
        data = b"written through the FSAL export before any failover\n"

        def first(c):
            f = c.grace_aware(lambda: c.open(f"{FSAL_PSEUDO}/probe.txt", create=True, write=True),
                              deadline=time.monotonic() + 20)
            c.write(f, 0, data)
            c.close_file(f)
            fh = c.lookup(f"{FSAL_PSEUDO}/probe.txt")
            return fh, c.read(fh, 0, 4096)

        self.fsal_fh, back = self.client.call(first)
        if back != data:
            raise RuntimeError(f"the client read back {back!r} through {FSAL_PSEUDO}, not what it wrote")
        self.fsal_data = data

    def fsal_check(self, i: int, dst: str, ids_before: dict[int, str]) -> dict[str, Any]:
        """After a failover: the FSAL export kept its Export_Id; the handle taken before still
        reads the same data (an FSAL whose data lives in shared storage), or is stale (MEM: in
        the old Ganesha's memory); a new file can be written and read on the new node."""
        reg = next(e for e in self.registry(dst) if e["pseudo"] == FSAL_PSEUDO)
        live = self.live_ids(dst)
        before = [n for n, p in ids_before.items() if p == reg["directory"]]
        out: dict[str, Any] = {"export_id": reg["export_id"], "export_id_kept": before == [reg["export_id"]]
                               and reg["export_id"] in live}

        def old_handle(c):
            try:
                return "read", c.read(self.fsal_fh, 0, 4096)
            except NfsError as exc:
                return exc.name, b""

        def fresh(c):
            name = f"{FSAL_PSEUDO}/after-failover-{i}.txt"
            g = c.grace_aware(lambda: c.open(name, create=True, write=True), deadline=time.monotonic() + 20)
            c.write(g, 0, b"ok\n")
            c.close_file(g)
            return c.read(c.lookup(name), 0, 16) == b"ok\n"

        how, got = self.client.call(old_handle)
        out["old_handle"] = how
        out["handle_preserved"] = how == "read" and got == self.fsal_data
        try:
            out["fresh_io"] = bool(self.client.call(fresh, timeout=40))
        except Exception as exc:
            out["fresh_io"], out["fresh_io_error"] = False, str(exc)
        keeps = self.report["fsal"]["keeps_data"]
        out["ok"] = out["export_id_kept"] and out["fresh_io"] and (out["handle_preserved"] or not keeps)
        stored = self.storage.read("probe.txt") if self.storage is not None else None
        if stored is not None:   # what the client wrote is in the cluster's own storage
            out["data_on_storage"] = stored == self.fsal_data
            out["ok"] = out["ok"] and out["data_on_storage"]
        return out

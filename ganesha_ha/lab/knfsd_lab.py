"""`ganesha-ha lab --server knfsd`: the same two nodes and volume, with knfsd's identity.

This machine has no kernel NFS server (no nfsd module), so no NFS client can mount through
knfsd here. What the lab can and does prove is the part ganesha-ha is responsible for:
- **export identity**: after every move, the new node's etab holds byte-for-byte the lines
  the old node had for the volume (directory, client, options, the pinned ``fsid=``), so
  file handles, which knfsd builds from that fsid, stay valid;
- **rmtab migration**: the client's mount record (the line mountd writes on MNT; written
  here as mountd would) travels with the volume and is merged into the new node's rmtab,
  so `showmount` and NFSv3 clients' state survive, and it leaves the old node's rmtab.
Each node runs exportfs inside its own mount namespace with its own /var/lib/nfs and an
empty /etc/exports; all changes go through the resource agent, as in the Ganesha lab.
"""
from __future__ import annotations

import time
from typing import Any

from .direct_failover import OCF_NAMES
from .direct_lab import DirectLab
from .knfsd_evidence import NFSD_NOTE, etab_lines, knfsd_evidence, nfsd_available, rmtab_lines


class KnfsdLab(DirectLab):
    """The lab with server=knfsd: identity and rmtab, no NFS traffic (see the module doc)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.report["mode"] = "node crash (no clean stop)" if self.opts.kill else "clean stop"
        self.report["note"] = NFSD_NOTE
        self.report["nfsd_module"] = nfsd_available()
        self.report.pop("grace_period_s", None)

    # ---- per-node state, read from the host side of each node's /var/lib/nfs bind ---------
    def etab(self, node: str) -> list[str]:
        """The node's etab lines for this volume, in file order, as exact text."""
        return etab_lines(self.nodes[node].var_lib_nfs / "etab", str(self.mountpoint))

    def rmtab(self, node: str) -> list[str]:
        return rmtab_lines(self.nodes[node].var_lib_nfs / "rmtab", str(self.mountpoint))

    def client_mounts(self, node: str) -> list[str]:
        """What rpc.mountd appends to rmtab when the client mounts (MNT) each export."""
        lines = [f"{self.net.addr('c')}:{self.mountpoint / d}:0x00000001" for d in ("data", "home")]
        path = self.nodes[node].var_lib_nfs / "rmtab"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(l + "\n" for l in lines))
        return lines

    # ---- setup ------------------------------------------------------------------------
    def setup_clients(self) -> None:
        say = self.say
        start = self.start_on_first_node()
        etab = self.etab("a")
        say(f"agent start on a: rc {start.rc} ({start.seconds:.2f} s): {len(etab)} etab lines; "
            f"floating IP {self.net.floating_ip} up on a")
        lines = self.client_mounts("a")
        self.report["client"] = {"address": self.net.addr("c"), "rmtab_lines": lines,
                                 "emulated": "no nfsd here: the lines rpc.mountd writes on MNT are "
                                             "written directly"}
        say(f"client {self.net.addr('c')}: mount records written to a's rmtab as mountd would "
            f"({len(lines)} lines)")

    # ---- one failover -----------------------------------------------------------------
    def failover(self, i: int, src: str, dst: str) -> dict[str, Any]:
        say = self.say
        S, D = self.nodes[src], self.nodes[dst]
        fo = self.begin_failover(i, src, dst)
        bad = fo["problems"].append
        etab_before, rmtab_before = self.etab(src), self.rmtab(src)
        reg_before = {e["directory"]: e["fsid"] for e in self.registry(src)}
        breaks = self.opts.breaks if i == 1 else ()
        t0 = time.monotonic()
        self.net.del_ip(src)
        if self.opts.kill:
            # The node dies: no agent stop. Fencing reboots it; a rebooted node's nfs-server
            # starts from /etc/exports, so nothing of this volume is exported there any more.
            how = S.umount(self.mountpoint, lazy=True)
            for f in ("etab", "rmtab"):
                (S.var_lib_nfs / f).write_text("")
            say(f"  node {src} crashed: IP gone, volume fenced ({how} unmount), its etab and rmtab "
                "empty again after the (emulated) reboot")
        else:
            how = self.stop_and_unmount(fo, src)
            if self.etab(src):
                bad(f"{src} still exports the volume after its stop: {self.etab(src)}")
            if self.rmtab(src):
                bad(f"{src}'s rmtab still lists the volume's clients after its stop")
        self.mount_on(fo, dst, src, how)
        if "export-id" in breaks:
            old = reg_before.get(str(self.mountpoint / "data"))
            D.cli("export", "update", str(self.mountpoint), "data", "--fsid", "4242", "--record-only",
                  "--force")  # the very drift that --force exists to allow
            say(f"  BREAK identity: /lab/data now fsid 4242 in the registry (was {old})")
        if "recovery" in breaks:
            D.run(["rm", "-f", str(self.mountpoint / ".ganesha-ha" / "rmtab")], check=True)
            say("  BREAK recovery: the saved rmtab removed from the volume")
        probe = self.agent(D, "monitor")  # Pacemaker's probe before a start: must say not running
        fo["agent"]["probe_on_new_node"] = probe.to_dict()
        if probe.rc != 7:
            bad(f"probe on {dst} returned {probe.rc} ({OCF_NAMES.get(probe.rc, probe.rc)}), "
                "not OCF_NOT_RUNNING")
        start = self.start_on(fo, dst)
        fo["service_gap_s"] = round(time.monotonic() - t0, 2)
        fo.update(knfsd_evidence(
            {"registry": reg_before, "etab": etab_before, "rmtab": rmtab_before},
            {"registry": {e["directory"]: e["fsid"] for e in self.registry(dst)},
             "etab": self.etab(dst), "rmtab": self.rmtab(dst)}))
        say(f"  mounted on {dst}; agent start rc {start.rc} ({start.seconds:.2f} s); IP up on {dst}: "
            f"{len(fo['etab_after'])} etab lines ({'byte-identical' if fo['etab_identical'] else 'DIFFERENT'}), "
            f"{fo['rmtab_lines_moved']}/{len(rmtab_before)} rmtab lines moved")
        checks = {"etab_identical": fo["etab_identical"], "fsids_equal": fo["fsids_equal"],
                  "rmtab_migrated": fo["rmtab_migrated"]}
        for name, passed in checks.items():
            if not passed:
                bad(f"check failed: {name}")
        fo["checks"] = checks
        fo["ok"] = not fo["problems"]
        say(f"  failover {i}: {'OK' if fo['ok'] else 'FAILED'}")
        return fo

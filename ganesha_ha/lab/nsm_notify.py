"""Who tells a moved volume's NFSv3 lock holders to reclaim: SM_NOTIFY from the floating IP.

After a failover the NLM clients of the volume must be sent SM_NOTIFY *from the floating
IP*, once the IP is up on the new node, so that they reclaim their locks inside its grace
period (issue 16; /work/notes/clients-facts.md section 3.3: `sm-notify -v <ip> -P <dir>`
binds to the IP, needs a name for it, sends the name). That is the product's job
(issue 16b: the exports agent carries statd's records with the volume, the
`ocf:ganesha-ha:notify` agent, placed after the IP, runs sm-notify). The lab uses it when
this checkout has it (`product_notify_argv()`: the in-tree `ra/notify`).

Until then `StandInNotifier` does the same from the lab's side, and every report says so:
before a failover it copies the holder's statd record (statd keeps one file per monitored
host in /var/lib/nfs/sm/, named by the host's address: Ganesha's SM_MON mon_name is the
client's IP) from the node serving the volume; after the IP is up on the new node it
writes it into a notify directory of that node and runs `sm-notify -d -v <ip> -P <dir>`
there. The directory's `state` file goes from node to node, so the NSM state number keeps
rising. It proves the rest of the chain (the client is notified from the IP, reclaims in
grace, a second host is refused); it does not prove that the product notifies.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from .node import LabNode

_RA_NOTIFY = Path(__file__).resolve().parent.parent.parent / "ra" / "notify"
STANDIN = "lab stand-in: sm-notify run by the lab (the product's notify step, issue 16b, is not in this checkout)"
PRODUCT = "ocf:ganesha-ha:notify (the product)"
NOTIFY_DIR = "ganesha-ha-lab-notify"   # under the node's /var/lib/nfs: statd's own user can reach it


def product_notify_argv() -> list[str] | None:
    """The product's notify agent as Pacemaker would run it (the checkout's `ra/notify`,
    issue 16b), or None when this checkout has none."""
    if os.access(_RA_NOTIFY, os.X_OK) and (_RA_NOTIFY.parent.parent / "ganesha_ha" / "notify_agent.py").is_file():
        return [str(_RA_NOTIFY)]
    return None


class StandInNotifier:
    """SM_NOTIFY to one volume's NLM lock holder from its floating IP `ip`, done by the
    lab (see the module doc). `holders`: the client addresses whose statd records travel."""

    def __init__(self, ip: str, holders: tuple[str, ...]) -> None:
        self.ip = ip
        self.holders = holders
        self.records: dict[str, bytes] = {}
        self.state: bytes | None = None

    def save(self, node: LabNode) -> int:
        """Before a failover: copy the holders' statd records of `node` (what the product's
        monitor will save to the volume). Returns how many there were; keeps the previous
        copy when there are none now (a node that lost them must not erase them)."""
        found = {}
        for host in self.holders:
            try:
                found[host] = (node.var_lib_nfs / "sm" / host).read_bytes()
            except OSError:
                continue
        if found:
            self.records = found
        return len(found)

    def notify(self, node: LabNode, timeout: float = 20.0) -> dict[str, Any]:
        """After the IP is up on `node`: the saved records into a notify directory of the
        node, then `sm-notify -d -v <ip> -P <dir>` there (foreground: its exit says whether
        every host answered). Returns what happened: rc, seconds, records sent, log."""
        if not self.records:
            return {"by": STANDIN, "records": 0, "rc": None, "log": "no statd record of the holder to send"}
        host_dir = node.var_lib_nfs / NOTIFY_DIR / self.ip
        inside = f"/var/lib/nfs/{NOTIFY_DIR}/{self.ip}"
        shutil.rmtree(host_dir, ignore_errors=True)
        for sub in ("sm", "sm.bak"):
            (host_dir / sub).mkdir(parents=True)
        for name, data in self.records.items():
            (host_dir / "sm" / name).write_bytes(data)
            os.chmod(host_dir / "sm" / name, 0o600)
        if self.state is not None:
            (host_dir / "state").write_bytes(self.state)
        for path in [host_dir, *host_dir.rglob("*")]:   # sm-notify drops to the owner of sm/
            shutil.chown(path, "statd", "nogroup")
        t = time.monotonic()
        try:
            cp = node.run(["sm-notify", "-d", "-m", "1", "-v", self.ip, "-P", inside], timeout=timeout)
            rc, log = cp.returncode, (cp.stderr or cp.stdout).strip()
        except Exception as exc:  # noqa: BLE001 - reported, the lab goes on
            rc, log = None, f"{type(exc).__name__}: {exc}"
        try:
            self.state = (host_dir / "state").read_bytes()
        except OSError:
            pass
        return {"by": STANDIN, "records": len(self.records), "rc": rc,
                "seconds": round(time.monotonic() - t, 2), "log": log[-400:]}

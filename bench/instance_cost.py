#!/usr/bin/env python3
"""What a volume's own ganesha.nfsd costs (instance mode, issue 17): run as root with the
checkout's venv, `.venv/bin/python bench/instance_cost.py [--many K]`. Prints markdown.

1. One instance serving N = 1, 100, 1000 exports: the agent's `start` as Pacemaker runs it
   (wall time, the instance spawned with its exports in its config, until it owns its bus name,
   listens on the floating IP and the read-back found every export), its `monitor` and `stop`,
   and the instance's memory (RSS, PSS, private = what it alone costs) and threads.
2. K instances side by side (one export each, each on its own floating IP): their memory
   (PSS summed, private per instance) and their idle CPU over 10 s.

Everything runs in a private mount namespace and a `gha-` network namespace (the floating IPs
on its loopback), on a private bus; all of it is removed at the end, each process by its PID.
bench/run runs it too (`bench(b)`: its section "One Ganesha per node or one per volume",
beside the cluster lab's failovers in both modes, bench/labs.py).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ganesha_ha import linux  # noqa: E402
from ganesha_ha.lab.ganesha_daemon import PrivateBus  # noqa: E402
from ganesha_ha.model import Export, KnfsdOptions  # noqa: E402
from ganesha_ha.registry import Registry, RegistryState  # noqa: E402

AGENT = ROOT / "ra" / "exports"
NS = f"gha-icost-{os.getpid()}"
SUBNET = "10.213.92"


def mem_kib(pid: int) -> dict[str, int]:
    """RSS (VmRSS), PSS and private (clean + dirty) of `pid`, in KiB; its threads."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "Threads:")):
                out[line.split(":")[0]] = int(line.split()[1])
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        rollup = {ln.split(":")[0]: int(ln.split()[1]) for ln in fh if ln.strip().endswith("kB")}
    out["Pss"] = rollup["Pss"]
    out["Private"] = rollup["Private_Clean"] + rollup["Private_Dirty"]
    return out


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])   # utime + stime


class Node:
    def __init__(self, work: Path, ips: int):
        from pyroute2 import NetNS, netns

        self.work = work
        self.was_mount = linux.is_mountpoint("/run/netns")
        netns.create(NS)
        with NetNS(NS, flags=0) as ipr:
            lo = ipr.link_lookup(ifname="lo")[0]
            ipr.link("set", index=lo, state="up")
            for i in range(1, ips + 1):
                ipr.addr("add", index=lo, address=self.ip(i), prefixlen=32)
            ipr.addr("add", index=lo, address="fd00:6761::1", prefixlen=128, flags=0x02)
        self.bus = PrivateBus(work / "bus", prefix_argv=["nsenter", f"--net=/run/netns/{NS}"]).start()
        self.config = work / "gha.conf"
        self.config.write_text(f"[ganesha]\nbus_address = {self.bus.address}\n[instance]\nlog_dir = {work / 'log'}\n"
                               f"grace_period = 5\nlease_lifetime = 10\n[node]\nruntime_dir = {work / 'run'}\n")
        self.store = work / "store"
        self.store.mkdir()
        linux.mount("gha-icost", self.store, "tmpfs", 0, "size=256m,mode=0755")

    @staticmethod
    def ip(i: int) -> str:
        return f"{SUBNET}.{i}"

    def volume(self, name: str, n: int) -> Path:
        vol = self.work / name
        vol.mkdir()
        (self.store / name).mkdir()
        linux.bind_mount(self.store / name, vol)
        reg = Registry(vol)
        state = reg.init("ganesha", (1, 65535), 1000, ganesha_mode="instance")
        exports = []
        for i in range(1, n + 1):
            (vol / f"e{i}").mkdir()
            exports.append(Export(path=f"e{i}", export_id=i, knfsd=KnfsdOptions(str(i)), pseudo=f"/e{i}",
                                  clients=(f"{SUBNET}.0/24(rw)",)))
        with reg.locked():
            reg.save(RegistryState(volume_uuid=state.volume_uuid, server="ganesha", id_range=(1, 65535),
                                   exports=tuple(exports), generation=state.generation, ganesha_mode="instance"))
        return vol

    def agent(self, action: str, vol: Path, ip: str) -> float:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "OCF_ROOT": "/usr/lib/ocf", "OCF_RESKEY_server": "ganesha",
               "OCF_RESKEY_volume": str(vol), "OCF_RESKEY_ip": ip, "OCF_RESKEY_config": str(self.config),
               "OCF_RESKEY_CRM_meta_timeout": "120000", "OCF_RESKEY_CRM_meta_interval": "10000"}
        t0 = time.monotonic()
        cp = subprocess.run(["nsenter", f"--net=/run/netns/{NS}", str(AGENT), action], env=env,
                            capture_output=True, text=True, timeout=180)
        took = time.monotonic() - t0
        if cp.returncode != 0:
            raise RuntimeError(f"{action} {vol}: {cp.returncode} {cp.stderr}")
        return took

    def instance_pid(self, vol: Path) -> int:
        import json

        uuid = json.loads((vol / ".ganesha-ha" / "registry.json").read_text())["volume"]["uuid"]
        pid = linux.lock_holder(self.work / "run" / "ganesha" / "instances" / uuid / "ganesha.pid")
        assert pid is not None
        return pid

    def remove(self) -> None:
        from pyroute2 import netns

        for pid in linux.all_pids():
            args = linux.cmdline(pid)
            if args and args[0].endswith("ganesha.nfsd") and any(str(self.work) in a for a in args):
                linux.terminate(pid, linux.proc_starttime(pid), 5.0)
        self.bus.stop()
        for mp in sorted((m for m in linux.mount_points() if m.startswith(str(self.work))), reverse=True):
            linux.umount(mp, lazy=True)
        netns.remove(NS)
        if not self.was_mount and not os.listdir("/run/netns"):
            linux.umount("/run/netns", lazy=True)


def one_instance(node: Node, sizes: list[int], reps: int) -> list[str]:
    rows = ["| exports | agent start (s) | monitor (s) | stop (s) | RSS (MiB) | PSS (MiB) | private (MiB) | threads |",
            "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        vol = node.volume(f"v{n}", n)
        starts, monitors, stops, mems = [], [], [], []
        for _ in range(reps):
            starts.append(node.agent("start", vol, node.ip(1)))
            time.sleep(1.0)
            mems.append(mem_kib(node.instance_pid(vol)))
            monitors.append(statistics.median(node.agent("monitor", vol, node.ip(1)) for _ in range(3)))
            stops.append(node.agent("stop", vol, node.ip(1)))
        m = {k: statistics.median(x[k] for x in mems) for k in mems[0]}
        rows.append(f"| {n} | {statistics.median(starts):.2f} | {statistics.median(monitors):.3f} | "
                    f"{statistics.median(stops):.2f} | {m['VmRSS'] / 1024:.1f} | {m['Pss'] / 1024:.1f} | "
                    f"{m['Private'] / 1024:.1f} | {m['Threads']:.0f} |")
    return rows


def many_instances(node: Node, k: int) -> list[str]:
    """K instances running together: what each costs alone (private memory: its own pages;
    PSS: with its share of the libraries they map together), summed, and their idle CPU.
    (MemAvailable is no measure on a machine others use at the same time.)"""
    vols = [node.volume(f"m{i}", 1) for i in range(1, k + 1)]
    for i, vol in enumerate(vols, 1):
        node.agent("start", vol, node.ip(i))
    time.sleep(3)
    pids = [node.instance_pid(v) for v in vols]
    mems = [mem_kib(p) for p in pids]
    pss = sum(m["Pss"] for m in mems)
    private = statistics.median(m["Private"] for m in mems)
    t0 = {p: cpu_ticks(p) for p in pids}
    time.sleep(10)
    hz = os.sysconf("SC_CLK_TCK")
    idle = sum(cpu_ticks(p) - t0[p] for p in pids) / hz / 10 * 100
    for i, vol in enumerate(vols, 1):
        node.agent("stop", vol, node.ip(i))
    with open("/proc/meminfo") as fh:
        total_kib = int(fh.readline().split()[1])
    return [f"| instances | PSS of all | private per instance (median) | idle CPU of all | "
            f"instances in {total_kib / 1024 / 1024:.0f} GiB at {pss / k / 1024:.0f} MiB each |",
            "|---|---|---|---|---|",
            f"| {k} | {pss / 1024:.0f} MiB | {private / 1024:.1f} MiB | {idle:.2f} % of one core | "
            f"{int(total_kib / (pss / k))} |"]


def bench(b) -> None:
    """bench/run's section: N = 1, 100 and 1000 exports (1 and 100 with --quick), 3 runs each
    (2 with --quick), and 20 instances side by side (10 with --quick); bench/run is in a private
    mount namespace already. Figures in b.r["instance_cost"]; a failure is reported, not raised."""
    quick = b.args.quick
    res = b.r["instance_cost"] = {"status": "not measured yet"}
    sizes, reps, many = ([1, 100], 2, 10) if quick else ([1, 100, 1000], 3, 20)
    work = Path(tempfile.mkdtemp(prefix="gha-icost-"))
    node = None
    try:
        node = Node(work, many)
        res.update(one=one_instance(node, sizes, reps), many=many_instances(node, many), status="measured")
    except Exception as exc:   # noqa: BLE001 - reported, as every section that cannot run here
        res["why"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    finally:
        if node is not None:
            node.remove()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1,100,1000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--many", type=int, default=20)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 2
    linux.enter_private_mount_namespace()
    work = Path(tempfile.mkdtemp(prefix="gha-icost-"))
    node = Node(work, max(args.many, 1))
    try:
        print("## One instance, N exports (medians)\n")
        print("\n".join(one_instance(node, [int(x) for x in args.sizes.split(",")], args.reps)))
        print(f"\n## {args.many} instances side by side (one export each)\n")
        print("\n".join(many_instances(node, args.many)))
    finally:
        node.remove()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark's private environment and the figures it collects (`Bench`).

`Bench.setup()` moves this process into a private mount namespace (nothing it mounts is
visible to the host), binds /var/lib/nfs and /run/resource-agents over temp dirs and
installs the agent as Pacemaker runs it; `cleanup()` stops what was started (by PID),
unmounts and removes the temp dir. The measurement sections (agents.py, ganesha_dbus.py,
labs.py) use its calls and write their figures into `Bench.r`; report.py reads them.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ganesha_ha import linux  # noqa: E402
from ganesha_ha.record import replace  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
RA_EXPORTS = ROOT / "ra" / "exports"   # the in-tree entry (a sh wrapper); timed for meta-data too
UPSTREAM = Path("/usr/lib/ocf/resource.d/heartbeat/exportfs")
RA_BENCH = Path("/work/shared/bench/ra_bench.sh")
OCF_ROOT = "/usr/lib/ocf"

KNFSD_CLIENT = "127.0.0.1(rw,sync)"   # what ra_bench.sh gives the upstream agent
GANESHA_CLIENT = "127.0.0.1(rw)"
ID_BASE = 1000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs):
    """The median of the figures that exist (None when there is none)."""
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def cpu_seconds(pid: int) -> float | None:
    """The CPU time (user + system, s) process `pid` has used so far (proc(5) stat fields 14, 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    """CPU time (user + system, s) of this process's waited-for children so far (and theirs)."""
    import resource

    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


class Bench:
    def __init__(self, args):
        self.args = args
        self.ns = [1, 100] if args.quick else [1, 100, 1000]
        self.reps = args.reps or (3 if args.quick else 5)
        self.work = Path(tempfile.mkdtemp(prefix="gha-bench."))
        self.mounts: list[Path] = []
        self.daemons: list = []
        self.bus = None
        self.agent_log = open(self.work / "agent.log", "ab")
        self.r: dict = {}   # results
        self.notes: list[str] = []
        self.conf = self.work / "ganesha-ha.conf"
        self.load_at_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        self.gdaemon = None          # the private ganesha.nfsd of the D-Bus section
        self.knfsd_vol1: Path | None = None     # volumes kept for the import profiles
        self.ganesha_vol1: Path | None = None

    def setup(self):
        linux.enter_private_mount_namespace()
        # The agent as Pacemaker runs it: the file `ganesha-ha install-agent` writes (a /bin/sh
        # script that execs the venv's python -IS), installed under a private OCF root.
        from ganesha_ha.install import install_agent

        (self.work / "ocf").mkdir(parents=True, exist_ok=True)
        self.agent = install_agent(str(self.work / "ocf")) / "exports"   # it returns the directory
        for d in ("/var/lib/nfs", "/run/resource-agents"):
            src = self.work / "bind" / d.strip("/")
            src.mkdir(parents=True)
            Path(d).mkdir(parents=True, exist_ok=True)
            linux.bind_mount(str(src), d)
            (src / ".gha_bench_sentinel").touch()
            if not (Path(d) / ".gha_bench_sentinel").exists():
                raise SystemExit(f"bind mount over {d} failed")
        for f in ("etab", "rmtab"):
            (Path("/var/lib/nfs") / f).touch()
        # the node's runtime directory on a tmpfs, as /run is on a node (its files are not synced
        # to a disk there: fsutil.write_runtime, nodestate's marks)
        self.run_dir = self.tmpfs("run")
        self.bus_sock = self.work / "bus" / "bus.sock"
        self.conf.write_text(
            "[ganesha]\n"
            f"bus_address = unix:path={self.bus_sock}\n"
            "protocols = 4\n"
            "dbus_timeout = 60\n"
            f"recovery_root = {self.work / 'recovery'}\n"
            "[node]\n"
            f"runtime_dir = {self.run_dir}\n"
        )

    def cleanup(self):
        for d in reversed(self.daemons):
            try:
                d.stop()
            except Exception as exc:  # keep cleaning up
                log(f"cleanup: {exc}")
        if self.bus is not None:
            self.bus.stop()
        for mp in reversed(self.mounts):
            try:
                linux.umount(str(mp), lazy=True)
            except OSError:
                pass
        self.agent_log.close()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def tmpfs(self, name: str) -> Path:
        mp = self.work / name
        mp.mkdir()
        linux.mount("gha-bench-volume", str(mp), "tmpfs", 0, "size=256m,mode=0755")
        self.mounts.append(mp)
        return mp

    def unmount_volumes(self) -> None:
        """Unmount every volume of the earlier sections (the runtime directory stays): the labs
        run their nodes in copies of this mount namespace, where a Ganesha volume still
        mounted here counts as one "mounted on this node" and its Export_Id range refused the
        lab's own (`volume init --id-range`: exit 5, the cluster lab not measured)."""
        for mp in [m for m in self.mounts if m != self.run_dir]:
            self.unmount(mp)
        self.knfsd_vol1 = self.ganesha_vol1 = None

    def unmount(self, mp: Path):
        linux.umount(str(mp), lazy=True)
        self.mounts.remove(mp)

    def make_volume(self, name: str, server: str, n: int, client: str, dirs: int | None = None):
        """A tmpfs volume with `dirs` (default n) directories d1, d2, ... and a registry
        holding exports of the first n (written once); Export_Ids from ID_BASE + 1."""
        from ganesha_ha.clientspec import parse_clients
        from ganesha_ha.model import Export, KnfsdOptions, new_fsid
        from ganesha_ha.registry import Registry

        mp = self.tmpfs(name)
        reg = Registry(mp)
        state = reg.init(server, (ID_BASE, ID_BASE + max(1999, 2 * (dirs or n))), 1000)
        clients = parse_clients([client])
        for i in range(1, (dirs or n) + 1):
            (mp / f"d{i}").mkdir()
        exps = []
        for i in range(1, n + 1):
            exps.append(Export(path=f"d{i}", export_id=ID_BASE + i, knfsd=KnfsdOptions(new_fsid()),
                               pseudo=f"{mp}/d{i}", clients=clients))
        with reg.locked():
            reg.save(replace(state, exports=tuple(exps)))
        return mp, exps

    def agent_env(self, server: str, volume: Path | None = None, **extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
        env.update(OCF_ROOT=OCF_ROOT, OCF_RESOURCE_INSTANCE="bench", OCF_RESKEY_server=server,
                   OCF_RESKEY_config=str(self.conf))
        if volume is not None:
            env["OCF_RESKEY_volume"] = str(volume)
        env.update(extra)
        return env

    def run(self, argv, env, expect=0):
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=self.agent_log)
        dt = time.perf_counter() - t0
        if expect is not None and p.returncode != expect:
            raise RuntimeError(f"{' '.join(map(str, argv))}: exit {p.returncode}, expected {expect} "
                               f"(see {self.work / 'agent.log'})")
        return dt

    def run_cpu(self, argv, env, expect=0) -> tuple[float, float]:
        """(wall seconds, CPU seconds) of one call: user + system time of the process and of
        the children it waited for (os.wait4), which a loaded machine inflates far less than
        the wall time (waiting for a CPU is not counted)."""
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=self.agent_log)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if expect is not None and p.returncode != expect:
            raise RuntimeError(f"{' '.join(map(str, argv))}: exit {p.returncode}, expected {expect} "
                               f"(see {self.work / 'agent.log'})")
        return dt, ru.ru_utime + ru.ru_stime

    def settings(self):
        from ganesha_ha.settings import load_settings
        return load_settings(self.conf)

    def ganesha_up(self):
        return self.gdaemon is not None and self.gdaemon.proc is not None

    def live_ids(self, bus_address: str | None = None) -> set[int] | None:
        """The Export_Ids the Ganesha on our bus (or on `bus_address`) serves; None: no answer."""
        from ganesha_ha.backends.ganesha import GaneshaBackend
        be = GaneshaBackend(self.settings(), bus_address)
        try:
            return set(be.show_exports())
        except Exception:
            return None
        finally:
            be.close()

    @staticmethod
    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

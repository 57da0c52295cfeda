"""Driver of bench/run (read bench/run's header for what is measured and how to run it).

Runs as root with the project's venv Python. It moves itself into a private mount namespace
first (nothing it mounts is visible to the host), binds /var/lib/nfs and
/run/resource-agents over temp dirs, and cleans up (daemons by PID, mounts, temp dir) in a
`finally`. Benchmarks, not tests: nothing here asserts a timing; targets are reported.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
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

from ganesha_ha.lab import nsutil  # noqa: E402
from ganesha_ha.record import replace  # noqa: E402

PY = ROOT / ".venv" / "bin" / "python"
RA_EXPORTS = ROOT / "ra" / "exports"   # the in-tree entry (a sh wrapper); timed for meta-data too
UPSTREAM = Path("/usr/lib/ocf/resource.d/heartbeat/exportfs")
RA_BENCH = Path("/work/shared/bench/ra_bench.sh")
OCF_ROOT = "/usr/lib/ocf"
GRACE_S = 5  # Grace_Period of the lab's Ganesha (ganesha_daemon.core_config default)

KNFSD_CLIENT = "127.0.0.1(rw,sync)"   # what ra_bench.sh gives the upstream agent
GANESHA_CLIENT = "127.0.0.1(rw)"
ID_BASE = 1000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_s(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f} s"


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if x >= 0.1 else f"{x * 1000:.1f} ms"


def fmt_t(x):
    """seconds, in ms below 1 s"""
    if x is None:
        return "n/a"
    return fmt_ms(x) if x < 1 else fmt_s(x)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def met(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


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

    # ------------------------------------------------------------------ environment
    def setup(self):
        nsutil.enter_private_mount_namespace()
        # The agent as Pacemaker runs it: the file `ganesha-ha install-agent` writes (a /bin/sh
        # script that execs the venv's python -IS), installed under a private OCF root.
        from ganesha_ha.install import install_agent

        (self.work / "ocf").mkdir(parents=True, exist_ok=True)
        self.agent = install_agent(str(self.work / "ocf"))
        for d in ("/var/lib/nfs", "/run/resource-agents"):
            src = self.work / "bind" / d.strip("/")
            src.mkdir(parents=True)
            Path(d).mkdir(parents=True, exist_ok=True)
            nsutil.bind_mount(str(src), d)
            (src / ".gha_bench_sentinel").touch()
            if not (Path(d) / ".gha_bench_sentinel").exists():
                raise SystemExit(f"bind mount over {d} failed")
        for f in ("etab", "rmtab"):
            (Path("/var/lib/nfs") / f).touch()
        self.bus_sock = self.work / "bus" / "bus.sock"
        self.conf.write_text(
            "[ganesha]\n"
            f"bus_address = unix:path={self.bus_sock}\n"
            "protocols = 4\n"
            "dbus_timeout = 60\n"
            f"recovery_root = {self.work / 'recovery'}\n"
            "[node]\n"
            f"runtime_dir = {self.work / 'run'}\n"
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
                nsutil.umount(str(mp), lazy=True)
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
        nsutil.mount("gha-bench-volume", str(mp), "tmpfs", 0, "size=256m,mode=0755")
        self.mounts.append(mp)
        return mp

    def unmount(self, mp: Path):
        nsutil.umount(str(mp), lazy=True)
        self.mounts.remove(mp)

    def make_volume(self, name: str, server: str, n: int, client: str):
        """A tmpfs volume with n directories and a registry holding n exports (written once)."""
        from ganesha_ha.model import Export, new_fsid, parse_clients
        from ganesha_ha.registry import Registry

        mp = self.tmpfs(name)
        reg = Registry(mp)
        state = reg.init(server, (ID_BASE, ID_BASE + 1999), 1000)
        clients = parse_clients([client])
        exps = []
        for i in range(1, n + 1):
            (mp / f"d{i}").mkdir()
            exps.append(Export(path=f"d{i}", export_id=ID_BASE + i, fsid=new_fsid(),
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

    # ------------------------------------------------------------------ knfsd
    @staticmethod
    def etab_count(mp: Path) -> int:
        prefix = f"{mp}/"
        with open("/var/lib/nfs/etab") as fh:
            return sum(1 for line in fh if line.startswith(prefix))

    def bench_knfsd(self):
        res = self.r.setdefault("knfsd", {})
        for n in self.ns:
            log(f"knfsd volume mode, N={n}")
            mp, _ = self.make_volume(f"kvol{n}", "knfsd", n, KNFSD_CLIENT)
            env = self.agent_env("knfsd", mp)
            starts, mons, stops = [], [], []
            for _ in range(self.reps):
                starts.append(self.run([self.agent, "start"], env))
                got = self.etab_count(mp)
                if got != n:
                    raise RuntimeError(f"knfsd start: {got} of {n} exports in etab")
                for _ in range(3):
                    mons.append(self.run([self.agent, "monitor"], env))
                stops.append(self.run([self.agent, "stop"], env))
                if self.etab_count(mp) != 0:
                    raise RuntimeError("knfsd stop left exports in etab")
            res[n] = {"start": med(starts), "monitor": med(mons), "stop": med(stops)}
            if n == 1:
                self.knfsd_vol1 = mp  # kept for the import-time profile of monitor
            else:
                self.unmount(mp)

    # ------------------------------------------------------------------ upstream (ra_bench.sh)
    def ra_bench(self, agent: Path, ns, tag: str, **env_extra) -> list[dict]:
        out = self.work / f"ra_bench-{tag}.csv"
        env = dict(os.environ)
        env.update({k: str(v) for k, v in env_extra.items()})
        env["RESULTS"] = str(out)
        env.setdefault("MON_REPS", str(self.reps))
        p = subprocess.run([str(RA_BENCH), str(agent), *map(str, ns)], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (self.work / f"ra_bench-{tag}.out").write_text(p.stdout)
        if p.returncode != 0 or not out.exists():
            raise RuntimeError(f"ra_bench.sh {agent} failed ({p.returncode}):\n{p.stdout[-2000:]}")
        rows = list(csv.DictReader(out.open()))
        for row in rows:
            if int(row["failures"]) != 0:
                self.notes.append(f"ra_bench.sh reported {row['failures']} failed calls for "
                                  f"{agent.name} at N={row['N']} ({tag})")
        return rows

    def bench_upstream(self):
        res = self.r.setdefault("upstream", {})
        small = [n for n in self.ns if n <= 100]
        runs = []
        for k in range(self.reps if not self.args.quick else 3):
            log(f"upstream exportfs agent via ra_bench.sh, N={small}, run {k + 1}")
            runs.append(self.ra_bench(UPSTREAM, small, f"up{k}"))
        for n in small:
            rows = [row for run in runs for row in run if int(row["N"]) == n]
            res[n] = {key: med(float(r[key]) for r in rows)
                      for key in ("start_all_s", "mon_one_ms", "mon_all_s", "stop_all_s")}
            res[n]["runs"] = len(rows)
            res[n]["extrapolated"] = False
        if 1000 in self.ns:
            log(f"upstream exportfs agent via ra_bench.sh, N=1000 (PHASE_CAP_S={self.args.cap}), 1 run")
            row = self.ra_bench(UPSTREAM, [1000], "up1000", PHASE_CAP_S=self.args.cap)[0]
            done = int(row["n_done"])
            d = {"runs": 1, "n_done": done, "extrapolated": done != 1000,
                 "mon_one_ms": float(row["mon_one_ms"])}
            if done == 1000:
                d.update(start_all_s=float(row["start_all_s"]), mon_all_s=float(row["mon_all_s"]),
                         stop_all_s=float(row["stop_all_s"]))
            else:
                d.update(self.extrapolate(res[100], row, done, 1000))
            res[1000] = d

    @staticmethod
    def extrapolate(r100: dict, row: dict, n: int, N: int) -> dict:
        """Fit a per-call cost c(k) = a + b·k (k = exports already in the table) through the
        full N=100 run and the capped run that reached n, and sum it up to N.
        Start: the k-th call sees k-1 exports; monitor: every call sees n; stop: n down to 1."""
        def fit(x1, y1, x2, y2):
            b = max((y2 - y1) / (x2 - x1), 0.0) if x2 != x1 else 0.0
            return y2 - b * x2, b
        # start: total(n) = a n + b n(n-1)/2  -> average per call at mean fill (n-1)/2
        a, b = fit(99 / 2, r100["start_all_s"] / 100, (n - 1) / 2, float(row["start_all_s"]) / n)
        start = a * N + b * N * (N - 1) / 2
        a, b = fit(100, r100["mon_all_s"] / 100, n, float(row["mon_all_s"]) / n)
        mon = N * (a + b * N)
        a, b = fit(101 / 2, r100["stop_all_s"] / 100, (n + 1) / 2, float(row["stop_all_s"]) / n)
        stop = a * N + b * N * (N + 1) / 2
        return {"start_all_s": start, "mon_all_s": mon, "stop_all_s": stop}

    def bench_classic(self):
        """Our agent in classic (drop-in) mode and the upstream agent, each driven by the same
        ra_bench.sh at N=1, in alternating runs (side by side, so that load on the machine
        weighs on both alike): the per-call floor of start, monitor and stop."""
        keys = ("start_all_s", "mon_one_ms", "stop_all_s")
        ours, theirs = [], []
        for k in range(self.reps):
            log(f"classic mode at N=1 via ra_bench.sh, ganesha-ha and upstream, run {k + 1}")
            ours += self.ra_bench(self.agent, [1], f"classic{k}", OCF_RESKEY_server="knfsd",
                                  OCF_RESKEY_config=str(self.conf))
            theirs += self.ra_bench(UPSTREAM, [1], f"classic-up{k}")
        self.r["classic"] = {key: med(float(r[key]) for r in ours) for key in keys}
        self.r["classic_up"] = {key: med(float(r[key]) for r in theirs) for key in keys}

    # ------------------------------------------------------------------ per-call floor
    def bench_floor(self):
        """meta-data of both agents, interleaved call by call; the bare interpreters; and one
        `exportfs` run (what the knfsd backend's running check costs in every monitor)."""
        log("per-call floor: meta-data, interpreters, exportfs")
        reps = max(self.reps * 4, 20)
        env_up = {**os.environ, "OCF_ROOT": OCF_ROOT}
        env_our = self.agent_env("knfsd")
        calls = {"meta_ours": ([self.agent, "meta-data"], env_our),
                 "meta_ra_exports": ([RA_EXPORTS, "meta-data"], env_our),
                 "meta_up": ([UPSTREAM, "meta-data"], env_up),
                 "python_bare": ([PY, "-IS", "-c", "pass"], env_our),
                 "python_site": ([PY, "-I", "-c", "pass"], env_our),
                 "sh_bare": (["/bin/sh", "-c", ":"], env_our),
                 "exportfs": (["/usr/sbin/exportfs"], env_our)}
        times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(reps):
            for name, (argv, env) in calls.items():
                times[name].append(self.run(argv, env))
        self.r["floor"] = {name: med(ts) for name, ts in times.items()}

    def importtime(self, argv_tail, env, reps=5):
        """Per-module cumulative import time (µs, median over runs) and the total."""
        runs = []
        for _ in range(reps):
            p = subprocess.run([PY, "-X", "importtime", *argv_tail], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lines = []
            for line in p.stderr.splitlines():
                m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
                if m:
                    lines.append((m.group(4), int(m.group(1)), int(m.group(2)), (len(m.group(3)) - 1) // 2))
            mods, last = {}, {}
            for name, own, cum, depth in reversed(lines):  # a module is printed after its imports
                last[depth] = name
                mods.setdefault(name, (own, cum, depth, last.get(depth - 1) if depth else None))
            runs.append(mods)
        names = set().union(*runs)
        out = {}
        for name in names:
            vals = [r[name] for r in runs if name in r]
            out[name] = {"self": med(v[0] for v in vals), "cum": med(v[1] for v in vals),
                         "depth": vals[0][2], "parent": vals[0][3]}
        total = med(sum(v[1] for v in r.values() if v[2] == 0) for r in runs)
        return out, total

    def bench_imports(self):
        """`python -X importtime` of the agent as its #! line runs it; the classic monitor's
        time taken apart step by step."""
        log("import time profiles")
        agent = ["-IS", str(self.agent)]  # as its #! line runs it
        env = self.agent_env("knfsd")
        prof = {}
        prof["python -IS -c pass"] = self.importtime(["-IS", "-c", "pass"], env)
        prof["python -I -c pass (with site)"] = self.importtime(["-I", "-c", "pass"], env)
        prof["agent meta-data"] = self.importtime([*agent, "meta-data"], env)
        cmp = self.tmpfs("classic1")
        (cmp / "d1").mkdir()
        cenv = self.agent_env("knfsd", OCF_RESKEY_directory=str(cmp / "d1"), OCF_RESKEY_clientspec="127.0.0.1",
                              OCF_RESKEY_options="rw,sync", OCF_RESKEY_fsid="1001")
        self.run([self.agent, "start"], cenv)
        prof["agent monitor (knfsd classic, N=1)"] = self.importtime([*agent, "monitor"], cenv)
        self.r["monitor_steps"] = self.monitor_steps(prof["agent monitor (knfsd classic, N=1)"][0], cenv)
        self.run([self.agent, "stop"], cenv)
        self.unmount(cmp)
        mp = getattr(self, "knfsd_vol1", None)
        if mp is not None:
            venv = self.agent_env("knfsd", mp)
            self.run([self.agent, "start"], venv)
            prof["agent monitor (knfsd volume, N=1)"] = self.importtime([*agent, "monitor"], venv)
            self.run([self.agent, "stop"], venv)
        gmp = getattr(self, "ganesha_vol1", None)
        if gmp is not None and self.ganesha_up():
            genv = self.agent_env("ganesha", gmp)
            self.run([self.agent, "start"], genv)
            prof["agent monitor (ganesha volume, N=1)"] = self.importtime([*agent, "monitor"], genv)
            self.run([self.agent, "stop"], genv)
        self.r["imports"] = prof

    def monitor_steps(self, mods: dict, env: dict) -> list[tuple[str, float]]:
        """Where a classic monitor's time goes, in real time (medians, steps interleaved): the
        interpreter; + the standard-library modules ganesha_ha's modules import (as the import
        profile lists them); + ganesha_ha's modules; + subprocess, which the exportfs check
        imports at run time; then the monitor itself (+ the exportfs run and the reads)."""
        ours = sorted(m for m in mods if m.startswith("ganesha_ha."))
        stdlib = sorted(m for m, v in mods.items() if (v["parent"] or "").startswith("ganesha_ha")
                        and not m.startswith("ganesha_ha") and m != "__future__")
        boot = f"import sys; sys.path.insert(0, {str(ROOT)!r}); import "
        steps = [("`python -IS -c pass`", [PY, "-IS", "-c", "pass"]),
                 (f"+ the standard library they import ({', '.join(stdlib)}, and what those import)",
                  [PY, "-IS", "-c", "import " + ", ".join(stdlib)]),
                 (f"+ ganesha_ha's modules ({len(ours)})", [PY, "-IS", "-c", boot + ", ".join(stdlib + ours)]),
                 ("+ subprocess (imported by the exportfs check)",
                  [PY, "-IS", "-c", boot + ", ".join(stdlib + ours + ["subprocess"])]),
                 ("the monitor: + running exportfs, reading registry, etab and rmtab", [self.agent, "monitor"])]
        times: list[list[float]] = [[] for _ in steps]
        for _ in range(max(self.reps * 4, 20)):
            for i, (_, argv) in enumerate(steps):
                times[i].append(self.run(argv, env))
        return [(label, med(ts)) for (label, _), ts in zip(steps, times)]

    # ------------------------------------------------------------------ Ganesha
    def settings(self):
        from ganesha_ha.settings import load_settings
        return load_settings(self.conf)

    def ganesha_up(self):
        return getattr(self, "gdaemon", None) is not None and self.gdaemon.proc is not None

    def live_ids(self) -> set[int] | None:
        from ganesha_ha.backends.ganesha import GaneshaBackend
        be = GaneshaBackend(self.settings())
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

    def bench_ganesha(self):
        from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus

        self.bus = PrivateBus(self.work / "bus").start()
        assert self.bus.socket == self.bus_sock
        res = self.r.setdefault("ganesha", {})
        self.gdaemon = GaneshaDaemon(self.work / "ganesha", self.bus, port=self.free_port(),
                                     recovery_root=self.work / "recovery")
        self.daemons.append(self.gdaemon)
        self.gdaemon.start()
        vols = {}
        for n in self.ns:
            log(f"Ganesha via D-Bus, N={n}")
            mp, exps = self.make_volume(f"gvol{n}", "ganesha", n, GANESHA_CLIENT)
            vols[n] = (mp, exps)
            want = {e.export_id for e in exps}
            env = self.agent_env("ganesha", mp)
            starts, mons, stops = [], [], []
            for _ in range(self.reps):
                starts.append(self.run([self.agent, "start"], env))
                live = self.live_ids() or set()
                if not want <= live:
                    raise RuntimeError(f"ganesha start: {len(want & live)} of {n} exports live")
                for _ in range(3):
                    mons.append(self.run([self.agent, "monitor"], env))
                stops.append(self.run([self.agent, "stop"], env))
                if want & (self.live_ids() or set()):
                    raise RuntimeError("ganesha stop left exports live")
            res[n] = {"start": med(starts), "monitor": med(mons), "stop": med(stops)}
        self.ganesha_vol1 = vols[1][0]
        if not self.args.skip_restart:
            self.bench_imports_needed = True
            self.gdaemon.stop()
            for n in self.ns:
                log(f"Ganesha restart with {n} EXPORT blocks in its config")
                res[n].update(self.restart_baseline(*vols[n]))
            self.gdaemon.start()

    def restart_baseline(self, mp, exps) -> dict:
        """What a one-daemon-per-resource agent does: launch ganesha.nfsd with the N EXPORT
        blocks in its config; time until it owns its bus name and ShowExports lists all N;
        then time its stop (SIGTERM until the process is gone)."""
        from ganesha_ha.backends.ganesha_conf import RenderOptions, render_export
        from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon

        blocks = "".join(render_export(e, mp, RenderOptions(protocols="4")) for e in exps)
        want = {e.export_id for e in exps}
        d = GaneshaDaemon(self.work / "ganesha-restart", self.bus, port=self.free_port(),
                          recovery_root=self.work / "recovery-restart", extra_config=blocks)
        self.daemons.append(d)
        starts, stops = [], []
        reps = min(self.reps, 3)
        for _ in range(reps):
            d.write_config()
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
            t0 = time.perf_counter()
            d.proc = subprocess.Popen(d.argv(), env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = t0 + 120
            while True:
                if d.proc.poll() is not None:
                    raise RuntimeError(f"ganesha.nfsd (restart baseline) exited:\n{d.log_tail()}")
                if self.bus.name_has_owner():
                    live = self.live_ids()
                    if live is not None and want <= live:
                        break
                if time.perf_counter() > deadline:
                    raise RuntimeError("ganesha.nfsd (restart baseline) did not serve within 120 s")
                time.sleep(0.005)
            starts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            d.stop()
            stops.append(time.perf_counter() - t0)
        self.daemons.remove(d)
        return {"restart_start": med(starts), "restart_stop": med(stops), "restart_reps": reps}

    # ------------------------------------------------------------------ lab failover
    def bench_lab(self):
        res = {"status": "not measured yet"}
        self.r["lab"] = res
        if self.args.no_lab:
            res["why"] = "not run (bench/run --no-lab)"
            return
        cli = ROOT / ".venv" / "bin" / "ganesha-ha"
        try:
            h = subprocess.run([cli, "lab", "--help"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            res["why"] = f"`ganesha-ha lab --help` failed: {exc}"
            return
        if h.returncode != 0 or "--json" not in h.stdout:
            res["why"] = "`ganesha-ha lab --json` is not available yet"
            return
        samples = []
        for k in range(self.args.lab_runs):
            log(f"failover lab, run {k + 1}")
            try:
                p = subprocess.run([cli, "lab", "--direct", "--json", "--failovers", "1"], capture_output=True,
                                   text=True, timeout=self.args.lab_timeout)
            except subprocess.TimeoutExpired:
                res["why"] = f"`ganesha-ha lab --direct --json --failovers 1` timed out ({self.args.lab_timeout} s)"
                return
            try:  # exit 1 with a JSON report is a measured run whose checks failed: reported as such
                sample = json.loads(p.stdout) if p.returncode in (0, 1) else None
            except ValueError:
                sample = None
            if not isinstance(sample, dict) or not sample.get("failovers"):
                res["why"] = (f"`ganesha-ha lab --direct --json --failovers 1` failed (exit {p.returncode}): "
                              + " ".join(p.stderr.split())[-300:])
                return
            samples.append(sample)
        res.update(status="measured", samples=samples)

    def bench_cluster_lab(self):
        """The default lab: Pacemaker decides four failovers (move, shutdown, kill -9, loss)."""
        res = {"status": "not measured yet"}
        self.r["cluster_lab"] = res
        if self.args.no_lab:
            res["why"] = "not run (bench/run --no-lab)"
            return
        log("cluster lab (two Pacemaker nodes, four failover kinds)")
        cmd = "ganesha-ha lab --json"
        try:
            p = subprocess.run([ROOT / ".venv" / "bin" / "ganesha-ha", "lab", "--json", "--quiet"],
                               capture_output=True, text=True, timeout=max(self.args.lab_timeout, 400))
        except subprocess.TimeoutExpired:
            res["why"] = f"`{cmd}` timed out"
            return
        try:
            sample = json.loads(p.stdout) if p.returncode in (0, 1) else None
        except ValueError:
            sample = None
        if not isinstance(sample, dict) or not sample.get("failovers"):
            res["why"] = f"`{cmd}` failed (exit {p.returncode}): " + " ".join(p.stderr.split())[-300:]
            return
        res.update(status="measured", sample=sample)

    # ------------------------------------------------------------------ report
    @staticmethod
    def cluster_lab_section(w, clab: dict) -> None:
        w("### Under Pacemaker (`ganesha-ha lab --json`, the default lab)")
        w("")
        if clab.get("status") != "measured":
            w(f"Not measured: {clab.get('why', '')}")
            w("")
            return
        s = clab["sample"]
        g = s.get("grace_period_s")
        w("Two corosync/Pacemaker nodes in namespaces, two volumes (active-active), the crmsh recipe "
          "of the README; the cluster decides each failover. Outage: the worst client of the volumes "
          "that moved. Cluster: from the fault (or the command) until the volume's IP ran on the new "
          "node, as crm_mon showed it. The lab's own limit adds the cluster's reaction time "
          "(a monitor interval for kill -9, membership for a node loss) to grace + 2 s.")
        w("")
        w("| failover | volumes | outage (client I/O) | cluster | grace configured | outage ≤ grace + 2 s | "
          "lab's limit | lab checks |")
        w("|---|---|---:|---:|---:|---|---:|---|")
        for f in s["failovers"]:
            gaps = [e.get("service_gap_s") for e in f["volumes"].values() if e.get("service_gap_s") is not None]
            o = f.get("outage_s")
            w(f"| {f['kind']} | {', '.join(f['volumes'])} | {fmt_s(o)} | {fmt_s(max(gaps) if gaps else None)} | "
              f"{fmt_s(g, 0)} | {met(None if o is None or g is None else o <= g + 2)} | "
              f"{fmt_s(f.get('outage_limit_s'), 0)} | {'passed' if f['ok'] else 'FAILED'} |")
        w("")

    @staticmethod
    def floor_obstacles(w, fl: dict, cl: dict, cu: dict, prof: dict, steps: list) -> None:
        """What stands between the per-call floor and 1.5× the shell agent, from this run's figures."""
        w("### What stands in the way of 1.5×")
        w("")
        if fl:
            w(f"- **The interpreter.** `python -IS -c pass` alone takes {fmt_ms(fl['python_bare'])}, "
              f"{fl['python_bare'] / fl['meta_up']:.2f}× the shell agent's whole `meta-data` "
              f"({fmt_ms(fl['meta_up'])}); `sh -c :` takes {fmt_ms(fl['sh_bare'])}. Our meta-data "
              f"({fmt_ms(fl['meta_ours'])}) is that start plus three small modules (agent, ocf, errors).")
        mon = prof.get("agent monitor (knfsd classic, N=1)")
        if cl and cu:
            ours, theirs = cl["mon_one_ms"] / 1000, cu["mon_one_ms"] / 1000
            text = (f"- **The monitor** ({fmt_ms(ours)} vs {fmt_ms(theirs)}; 1.5× would be "
                    f"{fmt_ms(1.5 * theirs)}), taken apart in the table below.")
            if len(steps) >= 2:
                text += (f" The interpreter and the standard-library modules the package needs take "
                         f"{fmt_ms(steps[1][1])} on their own, "
                         f"{steps[1][1] / theirs:.2f}× the shell agent's whole monitor.")
            text += (" Then come the package's own modules; `subprocess`, for the check that exportfs "
                     "can still drive the server, which the knfsd backend makes at every monitor "
                     "(tests/test_faults.py holds the monitor to failing when exportfs fails); and the "
                     "check of the export itself: that exportfs run and reads of the registry, etab "
                     "and rmtab.")
            if mon:
                gone = [m for m in ("site", "dataclasses", "typing", "uuid", "configobj") if m not in mon[0]]
                text += f" Not loaded any more: {', '.join(gone)}." if gone else ""
            text += " Going lower would take a resident process or another language."
            w(text)
        if steps:
            w("")
            w("A classic monitor taken apart (real time, medians of interleaved runs; each step "
              "includes the ones above):")
            w("")
            w("| step | time | adds |")
            w("|---|---:|---:|")
            prev = None
            for label, t in steps:
                w(f"| {label} | {fmt_ms(t)} | {'' if prev is None else f'+{(t - prev) * 1000:.1f} ms'} |")
                prev = t
        w("")

    def report(self, elapsed: float) -> str:
        r = self.r
        up, kn, ga = r.get("upstream", {}), r.get("knfsd", {}), r.get("ganesha", {})
        L = []
        w = L.append

        def up_cell(n, key, unit="s"):
            d = up.get(n)
            if not d or d.get(key) is None:
                return "n/a"
            v = d[key]
            txt = fmt_t(v)
            if n == 1000 and d.get("extrapolated") and key != "mon_one_ms":
                txt = f"≈{txt} *(extrapolated from {d['n_done']} done)*"
            return txt

        w("# ganesha-ha benchmarks")
        w("")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        w(f"Produced by `bench/run` on {time.strftime('%Y-%m-%d %H:%M')} — {platform.node()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}; whole run {elapsed / 60:.1f} min; load "
          f"average {self.load_at_start} at the start, {load} at the end (the machine is shared, "
          "hence the side-by-side ratios). "
          f"Every figure is the median of {self.reps} runs unless marked otherwise; every ratio "
          "compares figures of this same run. Upstream = `ocf:heartbeat:exportfs` "
          f"(resource-agents {pkg_version('resource-agents')}), timed by "
          "`/work/shared/bench/ra_bench.sh` (one primitive per export, as upstream requires); "
          f"nfs-utils {pkg_version('nfs-kernel-server')}, nfs-ganesha {pkg_version('nfs-ganesha')}. "
          "Client spec `127.0.0.1`, options `rw,sync`, exports on a tmpfs volume. "
          f"Code: {code_version()}.")
        w("")

        # targets
        t_mon = t_start = t_g = t_floor = t_lab = None
        mon_ratio = start_ratio = None
        if 1000 in kn and 1000 in up:
            mon_ratio = up[1000]["mon_all_s"] / kn[1000]["monitor"]
            start_ratio = up[1000]["start_all_s"] / kn[1000]["start"]
            t_mon, t_start = mon_ratio >= 100, start_ratio >= 20
        g1000 = ga.get(1000, {}).get("start")
        if g1000 is not None:
            t_g = g1000 <= 10
        fl = r.get("floor", {})
        cl, cu = r.get("classic", {}), r.get("classic_up", {})
        floor_ratios = []
        if fl:
            floor_ratios.append(fl["meta_ours"] / fl["meta_up"])
        if cl and cu:
            floor_ratios.append(cl["mon_one_ms"] / cu["mon_one_ms"])
        if floor_ratios:
            t_floor = max(floor_ratios) <= 1.5
        lab = r.get("lab", {})
        lab_outage = lab_grace = None
        if lab.get("status") == "measured":
            lab_outage, lab_grace = lab_summary(lab["samples"])
            if lab_outage is not None and lab_grace is not None:
                t_lab = lab_outage <= lab_grace + 2
        clab = r.get("cluster_lab", {})
        cl_outage = None
        if clab.get("status") == "measured":
            outs = [f.get("outage_s") for f in clab["sample"]["failovers"]]
            cl_grace = clab["sample"].get("grace_period_s")
            cl_outage = None if not outs or None in outs else max(outs)
            t_cl = cl_outage is not None and cl_grace is not None and cl_outage <= cl_grace + 2
            t_lab = t_cl if t_lab is None else (t_lab and t_cl)

        ex = " (upstream extrapolated)" if up.get(1000, {}).get("extrapolated") else ""
        w("## Targets")
        w("")
        w("| target | measured | |")
        w("|---|---|---|")
        w(f"| knfsd monitor of a 1000-export volume ≥ 100× cheaper than upstream's 1000 monitors | "
          f"{fmt_ratio(up.get(1000, {}).get('mon_all_s'), kn.get(1000, {}).get('monitor'))}{ex} | {met(t_mon)} |")
        w(f"| knfsd start of 1000 exports ≥ 20× faster than upstream's 1000 starts | "
          f"{fmt_ratio(up.get(1000, {}).get('start_all_s'), kn.get(1000, {}).get('start'))}{ex} | {met(t_start)} |")
        w(f"| 1000 exports live on Ganesha via D-Bus ≤ 10 s | {fmt_t(g1000)} | {met(t_g)} |")
        fr = ", ".join(f"{x:.2f}×" for x in floor_ratios) or "n/a"
        w(f"| per-call overhead at N = 1 within 1.5× of the shell agent (meta-data, classic monitor) | "
          f"{fr} | {met(t_floor)} |")
        if t_lab is None:
            w("| lab failover outage ≤ grace + 2 s | not measured | n/a |")
        else:
            parts = []
            if lab.get("status") == "measured":
                parts.append(f"direct: {fmt_s(lab_outage)} worst of {len(lab_rows(lab['samples']))} "
                             f"failovers (grace {lab_grace:g} s)")
            if cl_outage is not None:
                parts.append(f"under Pacemaker: {fmt_s(cl_outage)} worst of "
                             f"{len(clab['sample']['failovers'])} (move, shutdown, kill -9, node loss)")
            w(f"| lab failover outage ≤ grace + 2 s | {'; '.join(parts)} | {met(t_lab)} |")
        w("")

        w("## 1. Monitor cost per interval (knfsd, N exports on one volume)")
        w("")
        w("ganesha-ha: ONE `monitor` of the volume (`volume=`; registry vs etab, repair, rmtab saved). "
          "Upstream: N `monitor` calls, one per primitive, each at a table of N exports.")
        w("")
        w("| N | ganesha-ha: 1 monitor | upstream: N monitors | upstream: 1 monitor | ratio (upstream / ours) |")
        w("|---:|---:|---:|---:|---:|")
        for n in self.ns:
            ours = kn.get(n, {}).get("monitor")
            u = up.get(n, {})
            w(f"| {n} | {fmt_t(ours)} | {up_cell(n, 'mon_all_s')} | "
              f"{fmt_ms(u['mon_one_ms'] / 1000) if u else 'n/a'} | {fmt_ratio(u.get('mon_all_s'), ours)} |")
        w("")

        w("## 2. Start and stop of a volume with N exports")
        w("")
        w("### knfsd: ganesha-ha volume mode (one `start`/`stop`) vs upstream (N `start`s/`stop`s)")
        w("")
        w("| N | ganesha-ha start | upstream N starts | ratio | ganesha-ha stop | upstream N stops | ratio |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for n in self.ns:
            k, u = kn.get(n, {}), up.get(n, {})
            w(f"| {n} | {fmt_t(k.get('start'))} | {up_cell(n, 'start_all_s')} | "
              f"{fmt_ratio(u.get('start_all_s'), k.get('start'))} | {fmt_t(k.get('stop'))} | "
              f"{up_cell(n, 'stop_all_s')} | {fmt_ratio(u.get('stop_all_s'), k.get('stop'))} |")
        w("")
        w("### NFS-Ganesha: live over D-Bus vs restarting ganesha.nfsd with N EXPORT blocks")
        w("")
        w("ganesha-ha: the agent's `start` (volume mode) against a running private ganesha.nfsd, "
          "which returns with all N exports live (checked with ShowExports); `stop` removes them. "
          "Restart: launch ganesha.nfsd with the same N EXPORT blocks in its config, timed until it "
          "owns `org.ganesha.nfsd` and ShowExports lists all N; stop = SIGTERM until it exits. "
          "Not included: a restart drops every client of that Ganesha and re-enters the NFSv4 grace "
          "period for all of them when any client has recovery records (none here, so Ganesha lifts "
          "grace at once); ganesha-ha's D-Bus start touches no other export. Restart figures "
          "are medians of 3 runs.")
        w("")
        w("| N | ganesha-ha start (D-Bus) | ganesha.nfsd start with N blocks | ratio (restart / ours) | "
          "ganesha-ha stop | ganesha.nfsd stop | ganesha-ha monitor |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for n in self.ns:
            g = ga.get(n, {})
            rs = g.get("restart_start")
            rr = g.get("restart_reps")
            note = f" *({rr} runs)*" if rr and rr != self.reps else ""
            w(f"| {n} | {fmt_t(g.get('start'))} | {fmt_t(rs)}{note} | {fmt_ratio(rs, g.get('start'))} | "
              f"{fmt_t(g.get('stop'))} | {fmt_t(g.get('restart_stop'))} | {fmt_t(g.get('monitor'))} |")
        w("")

        w("## 3. Per-call floor (N = 1)")
        w("")
        w("| call | ganesha-ha | shell agent | ratio (ours / shell) |")
        w("|---|---:|---:|---:|")
        if fl:
            w(f"| `meta-data` | {fmt_ms(fl['meta_ours'])} | {fmt_ms(fl['meta_up'])} | "
              f"{fl['meta_ours'] / fl['meta_up']:.2f}× |")
            w(f"| `meta-data` through the in-tree `ra/exports` (sh wrapper) | {fmt_ms(fl['meta_ra_exports'])} | "
              f"{fmt_ms(fl['meta_up'])} | {fl['meta_ra_exports'] / fl['meta_up']:.2f}× |")
        if cl and cu:
            w(f"| classic-mode `monitor` of one export (ra_bench.sh: median of {self.reps} runs "
              f"× {self.reps} monitors) | {fmt_ms(cl['mon_one_ms'] / 1000)} | "
              f"{fmt_ms(cu['mon_one_ms'] / 1000)} | {cl['mon_one_ms'] / cu['mon_one_ms']:.2f}× |")
            w(f"| classic-mode `start` of one export | {fmt_ms(cl['start_all_s'])} | "
              f"{fmt_ms(cu['start_all_s'])} | {cl['start_all_s'] / cu['start_all_s']:.2f}× |")
            w(f"| classic-mode `stop` of one export | {fmt_ms(cl['stop_all_s'])} | "
              f"{fmt_ms(cu['stop_all_s'])} | {cl['stop_all_s'] / cu['stop_all_s']:.2f}× |")
        if fl:
            w(f"| (floor: `python -IS -c pass` / `sh -c :`) | {fmt_ms(fl['python_bare'])} | "
              f"{fmt_ms(fl['sh_bare'])} | |")
            w(f"| (`python -I -c pass`: with `site`, as the agent ran before) | {fmt_ms(fl['python_site'])} | | |")
            w(f"| (one `exportfs` run, no arguments) | {fmt_ms(fl['exportfs'])} | | |")
        w("")
        w("Our agent is timed as Pacemaker runs it, everywhere in this report: the file "
          "`ganesha-ha install-agent` writes (installed under a private OCF root): a `/bin/sh` script "
          "that execs the venv's `python -IS` (one shell start, so that a moved or removed venv still "
          "answers OCF_ERR_INSTALLED with a reason), as the in-tree `ra/exports` does. meta-data of both "
          "agents is interleaved call by call; the classic-mode figures come from alternating "
          "ra_bench.sh runs of the two agents.")
        w("")
        prof = r.get("imports", {})
        if t_floor is False:
            self.floor_obstacles(w, fl, cl, cu, prof, r.get("monitor_steps", []))
        if prof:
            w("### Import time (`python -X importtime -IS <installed agent> ACTION`, median of 5)")
            w("")
            w("Top costs: cumulative ms of each import made by `site` (interpreter start-up, .pth "
              "files) or by a ganesha_ha module, with the importer in brackets. `-X importtime` "
              "itself slows imports down, so these sums run above the timings of section 3.")
            w("")
            w("| action | all imports | top costs (cumulative ms, imported by) | ganesha_ha modules loaded |")
            w("|---|---:|---|---|")
            for name, (mods, total) in prof.items():
                cand = [(v["cum"], m, v["parent"] or "at run time") for m, v in mods.items()
                        if (v["parent"] == "site" or (v["parent"] or "").startswith("ganesha_ha")
                            or (v["depth"] == 0 and m not in INTERPRETER))
                        and not m.startswith("ganesha_ha")]
                cand += [(v["cum"], m, v["parent"] or "-") for m, v in mods.items()
                         if m.startswith("ganesha_ha") and v["depth"] == 0]
                top = sorted(cand, reverse=True)[:9]
                tops = ", ".join(f"{m} {c / 1000:.1f}" + (f" ({p})" if p and p != "-" else "")
                                 for c, m, p in top)
                ours = sorted(m.replace("ganesha_ha.", "") for m in mods if m.startswith("ganesha_ha."))
                w(f"| {name} | {total / 1000:.1f} ms | {tops} | {', '.join(ours) or '-'} |")
            w("")
        w("## 4. Failover outage (`ganesha-ha lab --direct --json --failovers 1`)")
        w("")
        if lab.get("status") == "measured":
            w("Two network namespaces as nodes, a loop device as the shared volume, ganesha.nfsd on "
              "each node, the agent (ra/exports) stops the volume on one node and starts it on the "
              "other; an NFSv4 client keeps reading through its saved file handle and writing a "
              "stream throughout. Outage: from the client's first failed I/O (read or write) to its "
              "first successful one after the move; writes alone also wait for the client's reclaim. "
              "Grace: the Grace_Period the lab configures, and the time until the new node left "
              "grace. Lab checks: handles kept, data verified, no acknowledged write lost, ids equal, "
              "recovery records moved, reclaim done.")
            w("")
            w("| run | outage (client I/O) | writes' outage | service gap | grace configured | "
              "grace measured | lab checks | outage ≤ grace + 2 s |")
            w("|---:|---:|---:|---:|---:|---:|---|---|")
            for row in lab_rows(lab["samples"]):
                o, g = row["outage"], row["grace"]
                w(f"| {row['run']} | {fmt_s(o)} | {fmt_s(row['write_outage'])} | {fmt_s(row['gap'])} | "
                  f"{fmt_s(g, 0)} | {fmt_s(row['grace_measured'])} | "
                  f"{'passed' if row['ok'] else 'FAILED'} | "
                  f"{met(None if o is None or g is None else o <= g + 2)} |")
        else:
            w("| outage | grace period | |")
            w("|---|---|---|")
            w(f"| **not measured yet** | | {lab.get('why', '')} |")
        w("")
        self.cluster_lab_section(w, r.get("cluster_lab", {}))
        if self.notes:
            w("## Notes")
            w("")
            for n in self.notes:
                w(f"- {n}")
            w("")
        return "\n".join(L) + "\n"


INTERPRETER = {"site", "encodings", "encodings.utf_8", "io", "abc", "codecs", "zipimport", "runpy",
               "_frozen_importlib_external", "_io", "marshal", "posix", "time", "_codecs", "_thread",
               "_warnings", "_weakref", "_imp", "_signal", "winreg", "encodings.aliases"}


def lab_rows(samples: list[dict]) -> list[dict]:
    """One row per failover of `ganesha-ha lab --json` reports (the keys the lab documents)."""
    rows = []
    for run, sample in enumerate(samples, 1):
        for fo in sample.get("failovers", []):
            rows.append({"run": run, "outage": fo.get("outage_s"),
                         "write_outage": (fo.get("writes") or {}).get("outage_s"),
                         "gap": fo.get("service_gap_s"), "grace": sample.get("grace_period_s"),
                         "grace_measured": fo.get("grace_measured_s"), "ok": fo.get("ok")})
    return rows


def lab_summary(samples: list[dict]) -> tuple[float | None, float | None]:
    """The worst outage over all failovers of all runs, and the configured grace period."""
    rows = lab_rows(samples)
    outages = [r["outage"] for r in rows]
    graces = [r["grace"] for r in rows if r["grace"] is not None]
    worst = None if not outages or None in outages else max(outages)
    return worst, (max(graces) if graces else None)


def code_version() -> str:
    """The commit benchmarked, and the files of ganesha_ha/ and ra/ with uncommitted changes (they count)."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "ganesha_ha", "ra"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except OSError:
        return "?"
    files = sorted(line[3:] for line in dirty if line[3:].strip())
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(files)}" if files else "")


def pkg_version(pkg: str) -> str:
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description="ganesha-ha benchmarks (see bench/run)")
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--cap", type=int, default=120)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-lab", action="store_true")
    ap.add_argument("--lab-runs", type=int, default=2)
    ap.add_argument("--lab-timeout", type=int, default=180)
    ap.add_argument("--skip-restart", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--out", default=None)
    ap.add_argument("--only", default="", help="comma list of sections (debugging): "
                                               "knfsd,ganesha,upstream,classic,floor,imports,lab")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("must run as root", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    b = Bench(args)
    only = set(filter(None, args.only.split(",")))
    want = lambda s: not only or s in only  # noqa: E731
    try:
        b.setup()
        if want("ganesha"):
            b.bench_ganesha()
        if want("knfsd"):
            b.bench_knfsd()
        if want("floor"):
            b.bench_floor()
        if want("imports"):
            b.bench_imports()
        if b.ganesha_up():
            b.gdaemon.stop()
        if want("classic"):
            b.bench_classic()
        if want("upstream"):
            b.bench_upstream()
        if want("lab"):
            b.bench_lab()
            b.bench_cluster_lab()
        text = b.report(time.monotonic() - t0)
    finally:
        b.cleanup()
    print(text)
    out = Path(args.out) if args.out else (None if (args.quick or only) else ROOT / "bench" / "RESULTS.md")
    if out is not None:
        out.write_text(text)
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

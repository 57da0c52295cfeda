"""ganesha-ha's agent beside ocf:heartbeat:exportfs: knfsd volume mode at N exports, the
upstream agent through ra_bench.sh (extrapolated when capped), classic mode side by side,
the per-call floor and the agent's import profile. Sections 1 to 3 of the report."""
from __future__ import annotations

import csv
import os
import re
import statistics
import subprocess
from pathlib import Path

from env import KNFSD_CLIENT, PY, RA_BENCH, RA_EXPORTS, ROOT, UPSTREAM, OCF_ROOT, Bench, log, med


def etab_count(mp: Path) -> int:
    prefix = f"{mp}/"
    with open("/var/lib/nfs/etab") as fh:
        return sum(1 for line in fh if line.startswith(prefix))


def bench_knfsd(b: Bench):
    res = b.r.setdefault("knfsd", {})
    for n in b.ns:
        log(f"knfsd volume mode, N={n}")
        mp, _ = b.make_volume(f"kvol{n}", "knfsd", n, KNFSD_CLIENT)
        env = b.agent_env("knfsd", mp)
        starts, mons, stops = [], [], []
        for _ in range(b.reps):
            starts.append(b.run([b.agent, "start"], env))
            got = etab_count(mp)
            if got != n:
                raise RuntimeError(f"knfsd start: {got} of {n} exports in etab")
            for _ in range(3):
                mons.append(b.run([b.agent, "monitor"], env))
            stops.append(b.run([b.agent, "stop"], env))
            if etab_count(mp) != 0:
                raise RuntimeError("knfsd stop left exports in etab")
        res[n] = {"start": med(starts), "monitor": med(mons), "stop": med(stops)}
        if n == 1:
            b.knfsd_vol1 = mp  # kept for the import-time profile of monitor
        else:
            b.unmount(mp)


def ra_bench(b: Bench, agent: Path, ns, tag: str, **env_extra) -> list[dict]:
    out = b.work / f"ra_bench-{tag}.csv"
    env = dict(os.environ)
    env.update({k: str(v) for k, v in env_extra.items()})
    env["RESULTS"] = str(out)
    env.setdefault("MON_REPS", str(b.reps))
    p = subprocess.run([str(RA_BENCH), str(agent), *map(str, ns)], env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (b.work / f"ra_bench-{tag}.out").write_text(p.stdout)
    if p.returncode != 0 or not out.exists():
        raise RuntimeError(f"ra_bench.sh {agent} failed ({p.returncode}):\n{p.stdout[-2000:]}")
    rows = list(csv.DictReader(out.open()))
    for row in rows:
        if int(row["failures"]) != 0:
            b.notes.append(f"ra_bench.sh reported {row['failures']} failed calls for "
                              f"{agent.name} at N={row['N']} ({tag})")
    return rows


def bench_upstream(b: Bench):
    res = b.r.setdefault("upstream", {})
    small = [n for n in b.ns if n <= 100]
    runs = []
    for k in range(b.reps if not b.args.quick else 1):
        log(f"upstream exportfs agent via ra_bench.sh, N={small}, run {k + 1}")
        runs.append(ra_bench(b, UPSTREAM, small, f"up{k}"))
    for n in small:
        rows = [row for run in runs for row in run if int(row["N"]) == n]
        res[n] = {key: med(float(r[key]) for r in rows)
                  for key in ("start_all_s", "mon_one_ms", "mon_all_s", "stop_all_s")}
        res[n]["runs"] = len(rows)
        res[n]["extrapolated"] = False
    if 1000 in b.ns:
        log(f"upstream exportfs agent via ra_bench.sh, N=1000 (PHASE_CAP_S={b.args.cap}), 1 run")
        row = ra_bench(b, UPSTREAM, [1000], "up1000", PHASE_CAP_S=b.args.cap)[0]
        done = int(row["n_done"])
        d = {"runs": 1, "n_done": done, "extrapolated": done != 1000,
             "mon_one_ms": float(row["mon_one_ms"])}
        if done == 1000:
            d.update(start_all_s=float(row["start_all_s"]), mon_all_s=float(row["mon_all_s"]),
                     stop_all_s=float(row["stop_all_s"]))
        else:
            d.update(extrapolate(res[100], row, done, 1000))
        res[1000] = d


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


def bench_classic(b: Bench):
    """Our agent in classic (drop-in) mode and the upstream agent, each driven by the same
    ra_bench.sh at N=1, in alternating runs (side by side, so that load on the machine
    weighs on both alike): the per-call floor of start, monitor and stop."""
    keys = ("start_all_s", "mon_one_ms", "stop_all_s")
    ours, theirs = [], []
    for k in range(b.reps):
        log(f"classic mode at N=1 via ra_bench.sh, ganesha-ha and upstream, run {k + 1}")
        ours += ra_bench(b, b.agent, [1], f"classic{k}", OCF_RESKEY_server="knfsd",
                              OCF_RESKEY_config=str(b.conf))
        theirs += ra_bench(b, UPSTREAM, [1], f"classic-up{k}")
    b.r["classic"] = {key: med(float(r[key]) for r in ours) for key in keys}
    b.r["classic_up"] = {key: med(float(r[key]) for r in theirs) for key in keys}


def classic_pair(b: Bench) -> tuple[dict, dict]:
    """One started classic export of each agent (ours, the shell agent), each directory on a
    tmpfs volume of its own; their OCF environments. stop_classic_pair() stops both."""
    ours_mp, up_mp = b.tmpfs("floor-ours"), b.tmpfs("floor-up")
    (ours_mp / "d1").mkdir()
    (up_mp / "d1").mkdir()
    common = {"OCF_RESKEY_clientspec": "127.0.0.1", "OCF_RESKEY_options": "rw,sync"}
    env_our = b.agent_env("knfsd", OCF_RESKEY_directory=str(ours_mp / "d1"), OCF_RESKEY_fsid="1101", **common)
    env_up = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
    env_up.update(OCF_ROOT=OCF_ROOT, OCF_RESOURCE_INSTANCE="bench_up", OCF_RESKEY_directory=str(up_mp / "d1"),
                  OCF_RESKEY_fsid="1102", **common)
    b.run([b.agent, "start"], env_our)
    b.run([UPSTREAM, "start"], env_up)
    return env_our, env_up


def stop_classic_pair(b: Bench, env_our: dict, env_up: dict) -> None:
    b.run([b.agent, "stop"], env_our)
    b.run([UPSTREAM, "stop"], env_up)
    for env in (env_our, env_up):
        b.unmount(Path(env["OCF_RESKEY_directory"]).parent)


def bench_floor(b: Bench):
    """meta-data of both agents and a classic-mode monitor of one export of each, interleaved
    call by call (wall and CPU time); the bare interpreters; and one `exportfs` run (what the
    knfsd backend's running check costs in every monitor)."""
    log("per-call floor: meta-data, classic monitor, interpreters, exportfs")
    reps = max(b.reps * 4, 20)
    env_up = {**os.environ, "OCF_ROOT": OCF_ROOT}
    env_our = b.agent_env("knfsd")
    mon_our, mon_up = classic_pair(b)
    calls = {"meta_ours": ([b.agent, "meta-data"], env_our),
             "meta_ra_exports": ([RA_EXPORTS, "meta-data"], env_our),
             "meta_up": ([UPSTREAM, "meta-data"], env_up),
             "mon_ours": ([b.agent, "monitor"], mon_our),
             "mon_up": ([UPSTREAM, "monitor"], mon_up),
             "python_bare": ([PY, "-IS", "-c", "pass"], env_our),
             "python_site": ([PY, "-I", "-c", "pass"], env_our),
             "sh_bare": (["/bin/sh", "-c", ":"], env_our),
             "exportfs": (["/usr/sbin/exportfs"], env_our)}
    times: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    try:
        for _ in range(reps):
            for name, (argv, env) in calls.items():
                wall, used = b.run_cpu(argv, env)
                times[name].append(wall)
                cpu[name].append(used)
    finally:
        stop_classic_pair(b, mon_our, mon_up)
    b.r["floor"] = {name: med(ts) for name, ts in times.items()}
    b.r["floor_cpu"] = {name: statistics.mean(ts) for name, ts in cpu.items()}
    b.r["floor_reps"] = reps


def profiled(argv_tail: list[str]) -> list[str]:
    """The command that runs `python -X importtime ARGV_TAIL`. The agent file is a shell script
    that execs the interpreter (ganesha_ha/install.py): profiled, a copy of it whose exec line
    adds `-X importtime`, so that what is timed is the agent as Pacemaker runs it."""
    if len(argv_tail) >= 2 and Path(argv_tail[1]).is_file() and \
            Path(argv_tail[1]).read_bytes().startswith(b"#!/bin/sh"):
        script = Path(argv_tail[1])
        text = script.read_text()
        if 'exec "$py" -IS' not in text:
            raise RuntimeError(f"{script}: no 'exec \"$py\" -IS' line to profile")
        copy = script.with_name(script.name + ".importtime")
        copy.write_text(text.replace('exec "$py" -IS', 'exec "$py" -X importtime -IS', 1))
        copy.chmod(0o755)
        return [str(copy), *argv_tail[2:]]
    return [PY, "-X", "importtime", *argv_tail]


def importtime(b: Bench, argv_tail, env, reps=5):
    """Per-module cumulative import time (µs, median over runs) and the total."""
    runs = []
    argv = profiled(list(argv_tail))
    for _ in range(reps):
        p = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
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


def bench_imports(b: Bench):
    """`python -X importtime` of the agent as the installed agent runs it; the classic
    monitor's time taken apart step by step."""
    log("import time profiles")
    # what the installed agent (a /bin/sh script, install.py) execs: the venv's python -IS
    agent = ["-IS", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); from ganesha_ha.agent import main; "
                          "sys.exit(main())"]
    env = b.agent_env("knfsd")
    prof = {}
    prof["python -IS -c pass"] = importtime(b, ["-IS", "-c", "pass"], env)
    prof["python -I -c pass (with site)"] = importtime(b, ["-I", "-c", "pass"], env)
    prof["agent meta-data"] = importtime(b, [*agent, "meta-data"], env)
    cmp = b.tmpfs("classic1")
    (cmp / "d1").mkdir()
    cenv = b.agent_env("knfsd", OCF_RESKEY_directory=str(cmp / "d1"), OCF_RESKEY_clientspec="127.0.0.1",
                          OCF_RESKEY_options="rw,sync", OCF_RESKEY_fsid="1001")
    b.run([b.agent, "start"], cenv)
    prof["agent monitor (knfsd classic, N=1)"] = importtime(b, [*agent, "monitor"], cenv)
    b.r["monitor_steps"] = monitor_steps(b, prof["agent monitor (knfsd classic, N=1)"][0], cenv)
    b.run([b.agent, "stop"], cenv)
    b.unmount(cmp)
    mp = b.knfsd_vol1
    if mp is not None:
        venv = b.agent_env("knfsd", mp)
        b.run([b.agent, "start"], venv)
        prof["agent monitor (knfsd volume, N=1)"] = importtime(b, [*agent, "monitor"], venv)
        b.run([b.agent, "stop"], venv)
    gmp = b.ganesha_vol1
    if gmp is not None and b.ganesha_up():
        genv = b.agent_env("ganesha", gmp)
        b.run([b.agent, "start"], genv)
        prof["agent monitor (ganesha volume, N=1)"] = importtime(b, [*agent, "monitor"], genv)
        b.run([b.agent, "stop"], genv)
    b.r["imports"] = prof


# the standard library a classic monitor cannot do without, in the order the steps add it, and why
NAMED_STDLIB = [(("re", "json"), "the registry's JSON and the model's client and option rules (json needs re; "
                                 "re brings enum, functools, collections)"),
                (("ipaddress",), "client addresses, checked and normalised"),
                (("pathlib",), "the package's file model (Volume, Registry, the stores: pathlib.Path)")]


def monitor_steps(b: Bench, mods: dict, env: dict) -> list[tuple[str, float, float]]:
    """Where a classic monitor's time goes (wall medians and mean CPU time, steps interleaved,
    each step including the ones before): the interpreter; + re and json, + ipaddress,
    + pathlib (each when ganesha_ha's modules import it, as the import profile lists them);
    + the rest of the standard library they import; + ganesha_ha's modules; then the monitor
    itself as Pacemaker runs it (+ the installed agent's sh wrapper, the exportfs run and the
    reads). Every Python step ends with os._exit, as the agent's launcher does."""
    ours = sorted(m for m in mods if m.startswith("ganesha_ha."))
    stdlib = sorted(m for m, v in mods.items() if (v["parent"] or "").startswith("ganesha_ha")
                    and not m.startswith("ganesha_ha") and m != "__future__")
    end = "; os._exit(0)"
    loaded = ["os"]
    steps = [("`python -IS -c pass`", [PY, "-IS", "-c", "import os" + end])]
    for names, why in NAMED_STDLIB:
        present = [n for n in names if n in stdlib]
        if present:
            loaded += present
            steps.append((f"+ {' and '.join(present)}: {why}", [PY, "-IS", "-c", f"import {', '.join(loaded)}" + end]))
    rest = [m for m in stdlib if m not in loaded]
    if rest:
        loaded += rest
        steps.append((f"+ the rest of the standard library they import ({', '.join(rest)}, and what those "
                      "import)", [PY, "-IS", "-c", f"import {', '.join(loaded)}" + end]))
    steps += [(f"+ ganesha_ha's modules ({len(ours)})",
               [PY, "-IS", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); import {', '.join(loaded + ours)}" + end]),
              ("the monitor: + the sh wrapper, running exportfs (posix_spawn), reading its state",
               [b.agent, "monitor"])]
    times: list[list[float]] = [[] for _ in steps]
    cpu: list[list[float]] = [[] for _ in steps]
    for _ in range(max(b.reps * 4, 20)):
        for i, (_, argv) in enumerate(steps):
            wall, used = b.run_cpu(argv, env)
            times[i].append(wall)
            cpu[i].append(used)
    return [(label, med(ts), statistics.mean(cs)) for (label, _), ts, cs in zip(steps, times, cpu)]

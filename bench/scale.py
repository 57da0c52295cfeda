"""Scale of one volume: SCALE_N exports on one knfsd volume and on one Ganesha volume.

The volume's registry holds SCALE_N - 1 exports and one more directory; then, as an
administrator and Pacemaker would: `ganesha-ha volume start`, `ganesha-ha export add` of the
SCALE_N-th export (live), the agent's `monitor` of the whole volume, `ganesha-ha export list`,
the registry's size on disk, `ganesha-ha volume stop`; for Ganesha also a restart of
ganesha.nfsd with the same SCALE_N EXPORT blocks, side by side (bench/ganesha_dbus.py). The
monitor's cost per export at every N measured in this run shows whether it stays O(N).
"""
from __future__ import annotations

from env import GANESHA_CLIENT, KNFSD_CLIENT, ROOT, Bench, log, med

CLI = ROOT / ".venv" / "bin" / "ganesha-ha"
SCALE_N = 10_000
RESTART_CAP = 240   # s: ganesha.nfsd 4.3 takes minutes to load 10 000 EXPORT blocks from its config


def bench_scale(b: Bench):
    n = 500 if b.args.quick else SCALE_N
    res = b.r["scale"] = {"n": n}
    for server, client in (("knfsd", KNFSD_CLIENT), ("ganesha", GANESHA_CLIENT)):
        if server == "ganesha":
            from ganesha_dbus import start_ganesha
            start_ganesha(b)
        log(f"scale: {n} exports on one {server} volume")
        try:
            res[server] = one_volume(b, server, client, n)
        except Exception as exc:   # keep the other figures of the run
            log(f"scale {server} failed: {exc}")
            res[server] = {"why": " ".join(str(exc).split())[:300]}


def one_volume(b: Bench, server: str, client: str, n: int) -> dict:
    mp, _ = b.make_volume(f"scale-{server}", server, n - 1, client, dirs=n)
    cli = [CLI, "--config", str(b.conf)]
    env = b.agent_env(server, mp)
    reps = 1 if n >= 5000 or b.args.quick else min(b.reps, 3)
    out: dict = {"registry_before": registry_size(mp)}
    starts, adds, mons, lists, stops = [], [], [], [], []
    for _ in range(reps):
        starts.append(b.run([*cli, "volume", "start", str(mp)], env))
        adds.append(b.run([*cli, "export", "add", str(mp), str(mp / f"d{n}"), "--client", client,
                           "--pseudo", f"{mp}/d{n}"], env))
        out["registry"] = registry_size(mp)
        if "exports" not in out:
            from ganesha_ha.registry import Registry
            out["exports"] = Registry(mp).load().exports   # the n blocks of the restart below
        mons.append(med(b.run([b.agent, "monitor"], env) for _ in range(3)))
        lists.append(b.run([*cli, "export", "list", str(mp)], env))
        live = count_live(b, server, mp)
        if live != n:
            raise RuntimeError(f"scale {server}: {live} of {n} exports live after the add")
        stops.append(b.run([*cli, "volume", "stop", str(mp)], env))
        if count_live(b, server, mp):
            raise RuntimeError(f"scale {server}: exports left live after volume stop")
        # back to n - 1 exports in the registry for the next repetition (recorded only)
        b.run([*cli, "export", "remove", str(mp), str(mp / f"d{n}")], env)
    out.update(start=med(starts), add=med(adds), monitor=med(mons), list=med(lists), stop=med(stops),
               reps=reps)
    exports_n = out.pop("exports")
    if server == "ganesha" and not b.args.skip_restart:
        from ganesha_dbus import RestartBaseline
        from ganesha_ha.lab.ganesha_daemon import PrivateBus

        bus2 = PrivateBus(b.work / "bus-scale").start()
        restart = RestartBaseline(b, mp, exports_n, bus2)
        try:
            log(f"scale: ganesha.nfsd restart with {n} EXPORT blocks (at most {RESTART_CAP} s)")
            s, t = restart.once(RESTART_CAP)
            out.update(restart_start=s, restart_stop=t, restart_cap=RESTART_CAP)
        finally:
            restart.close()
            bus2.stop()
    b.unmount(mp)
    return out


def registry_size(mp) -> int:
    return (mp / ".ganesha-ha" / "registry.json").stat().st_size


def count_live(b: Bench, server: str, mp) -> int:
    if server == "ganesha":
        from ganesha_ha.backends.ganesha import GaneshaBackend
        be = GaneshaBackend(b.settings())
        try:
            return sum(1 for p in be.show_exports().values() if p.startswith(f"{mp}/"))
        finally:
            be.close()
    from agents import etab_count
    return etab_count(mp)


"""NFS-Ganesha: exports made live over D-Bus by the agent's start, against launching
ganesha.nfsd with the same N EXPORT blocks in its config (what a restart-based agent does)."""
from __future__ import annotations

import os
import subprocess
import time

from env import GANESHA_CLIENT, Bench, log, med


def bench_ganesha(b: Bench):
    from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus

    b.bus = PrivateBus(b.work / "bus").start()
    assert b.bus.socket == b.bus_sock
    res = b.r.setdefault("ganesha", {})
    b.gdaemon = GaneshaDaemon(b.work / "ganesha", b.bus, port=b.free_port(),
                                 recovery_root=b.work / "recovery")
    b.daemons.append(b.gdaemon)
    b.gdaemon.start()
    vols = {}
    for n in b.ns:
        log(f"Ganesha via D-Bus, N={n}")
        mp, exps = b.make_volume(f"gvol{n}", "ganesha", n, GANESHA_CLIENT)
        vols[n] = (mp, exps)
        want = {e.export_id for e in exps}
        env = b.agent_env("ganesha", mp)
        starts, mons, stops = [], [], []
        for _ in range(b.reps):
            starts.append(b.run([b.agent, "start"], env))
            live = b.live_ids() or set()
            if not want <= live:
                raise RuntimeError(f"ganesha start: {len(want & live)} of {n} exports live")
            for _ in range(3):
                mons.append(b.run([b.agent, "monitor"], env))
            stops.append(b.run([b.agent, "stop"], env))
            if want & (b.live_ids() or set()):
                raise RuntimeError("ganesha stop left exports live")
        res[n] = {"start": med(starts), "monitor": med(mons), "stop": med(stops)}
    b.ganesha_vol1 = vols[1][0]
    if not b.args.skip_restart:
        b.gdaemon.stop()
        for n in b.ns:
            log(f"Ganesha restart with {n} EXPORT blocks in its config")
            res[n].update(restart_baseline(b, *vols[n]))
        b.gdaemon.start()


def restart_baseline(b: Bench, mp, exps) -> dict:
    """What a one-daemon-per-resource agent does: launch ganesha.nfsd with the N EXPORT
    blocks in its config; time until it owns its bus name and ShowExports lists all N;
    then time its stop (SIGTERM until the process is gone)."""
    from ganesha_ha.backends.ganesha_conf import RenderOptions, render_export
    from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon

    blocks = "".join(render_export(e, mp, RenderOptions(protocols="4")) for e in exps)
    want = {e.export_id for e in exps}
    d = GaneshaDaemon(b.work / "ganesha-restart", b.bus, port=b.free_port(),
                      recovery_root=b.work / "recovery-restart", extra_config=blocks)
    b.daemons.append(d)
    starts, stops = [], []
    reps = min(b.reps, 3)
    for _ in range(reps):
        d.write_config()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=b.bus.address)
        t0 = time.perf_counter()
        d.proc = subprocess.Popen(d.argv(), env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + 120
        while True:
            if d.proc.poll() is not None:
                raise RuntimeError(f"ganesha.nfsd (restart baseline) exited:\n{d.log_tail()}")
            if b.bus.name_has_owner():
                live = b.live_ids()
                if live is not None and want <= live:
                    break
            if time.perf_counter() > deadline:
                raise RuntimeError("ganesha.nfsd (restart baseline) did not serve within 120 s")
            time.sleep(0.005)
        starts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        d.stop()
        stops.append(time.perf_counter() - t0)
    b.daemons.remove(d)
    return {"restart_start": med(starts), "restart_stop": med(stops), "restart_reps": reps}

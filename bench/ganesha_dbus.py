"""NFS-Ganesha: exports made live over D-Bus by the agent's start, side by side with launching
ganesha.nfsd with the same N EXPORT blocks in its config (what a restart-based agent does),
and the raw D-Bus floor (one AddExport per export from one Python process, nothing else).

Ours and the restart run interleaved, one after the other in each repetition, so that load
from others on the machine weighs on both alike: our agent against a private ganesha.nfsd on
one private bus, the restarted ganesha.nfsd on a second private bus (both own the name
org.ganesha.nfsd, each on its own bus)."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from env import GANESHA_CLIENT, Bench, children_cpu, cpu_seconds, log, med


def start_ganesha(b: Bench) -> None:
    """The private bus and ganesha.nfsd our agent drives (once per run)."""
    from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon, PrivateBus

    if b.ganesha_up():
        return
    b.bus = PrivateBus(b.work / "bus").start()
    assert b.bus.socket == b.bus_sock
    b.gdaemon = GaneshaDaemon(b.work / "ganesha", b.bus, port=b.free_port(),
                              recovery_root=b.work / "recovery")
    b.daemons.append(b.gdaemon)
    b.gdaemon.start()


def bench_ganesha(b: Bench):
    from ganesha_ha.lab.ganesha_daemon import PrivateBus

    start_ganesha(b)
    res = b.r.setdefault("ganesha", {})
    bus2 = None
    if not b.args.skip_restart:
        bus2 = PrivateBus(b.work / "bus2").start()
    try:
        top = max(b.ns)
        for n in b.ns:
            log(f"Ganesha via D-Bus, a ganesha.nfsd restart{' and the raw D-Bus floor' if n == top else ''}, "
                f"N={n} (interleaved)")
            mp, exps = b.make_volume(f"gvol{n}", "ganesha", n, GANESHA_CLIENT)
            floor = b.make_volume(f"gfloor{n}", "ganesha", n, GANESHA_CLIENT) if n == top else None
            res[n] = measure(b, n, mp, exps, bus2, floor)
            if n == 1:
                b.ganesha_vol1 = mp
    finally:
        if bus2 is not None:
            bus2.stop()


def measure(b: Bench, n: int, mp: Path, exps, bus2, floor=None) -> dict:
    """Per repetition: our agent's start, 3 monitors and stop; then (unless --skip-restart)
    the restart's start and stop with the same N blocks; then, given `floor` (a second
    volume of N exports), the raw D-Bus floor. Medians."""
    want = {e.export_id for e in exps}
    env = b.agent_env("ganesha", mp)
    restart = RestartBaseline(b, mp, exps, bus2) if bus2 is not None else None
    starts, mons, stops, rstarts, rstops, fadds, fremoves = [], [], [], [], [], [], []
    cpu: dict[str, list] = {"agent_cpu": [], "ganesha_cpu": [], "restart_cpu": []}
    try:
        for _ in range(b.reps):
            g0, a0 = cpu_seconds(b.gdaemon.proc.pid), children_cpu()
            starts.append(b.run([b.agent, "start"], env))
            cpu["agent_cpu"].append(children_cpu() - a0)
            cpu["ganesha_cpu"].append(_minus(cpu_seconds(b.gdaemon.proc.pid), g0))
            live = b.live_ids() or set()
            if not want <= live:
                raise RuntimeError(f"ganesha start: {len(want & live)} of {n} exports live")
            for _ in range(3):
                mons.append(b.run([b.agent, "monitor"], env))
            stops.append(b.run([b.agent, "stop"], env))
            if want & (b.live_ids() or set()):
                raise RuntimeError("ganesha stop left exports live")
            if restart is not None:
                s, t = restart.once()
                rstarts.append(s)
                rstops.append(t)
                cpu["restart_cpu"].append(restart.cpu)
            if floor is not None:
                f = raw_floor(b, *floor)
                fadds.append(f["add"])
                fremoves.append(f["remove"])
    finally:
        if restart is not None:
            restart.close()
    out = {"start": med(starts), "monitor": med(mons), "stop": med(stops), **{k: med(v) for k, v in cpu.items()}}
    if rstarts:
        out.update(restart_start=med(rstarts), restart_stop=med(rstops), restart_reps=len(rstarts))
    if fadds:
        out.update(floor_add=med(fadds), floor_remove=med(fremoves))
    return out


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


class RestartBaseline:
    """What a one-daemon-per-resource agent does: launch ganesha.nfsd with the N EXPORT blocks
    in its config; `once()` times until it owns its bus name and ShowExports lists all N, then
    its stop (SIGTERM until the process is gone)."""

    def __init__(self, b: Bench, mp: Path, exps, bus):
        from ganesha_ha.backends.ganesha_conf import RenderOptions, render_export
        from ganesha_ha.lab.ganesha_daemon import GaneshaDaemon

        blocks = "".join(render_export(e, mp, RenderOptions(protocols="4")) for e in exps)
        self.b, self.bus = b, bus
        self.want = {e.export_id for e in exps}
        self.d = GaneshaDaemon(b.work / f"ganesha-restart-{len(exps)}", bus, port=b.free_port(),
                               recovery_root=b.work / "recovery-restart", extra_config=blocks)
        b.daemons.append(self.d)

    def once(self, cap: float = 300) -> tuple[float | None, float]:
        """(start, stop) in seconds; start None when ganesha.nfsd did not serve all N within
        `cap` s (it is stopped then, and the stop timed as ever)."""
        d = self.d
        d.write_config()
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.bus.address)
        t0 = time.perf_counter()
        d.proc = subprocess.Popen(d.argv(), env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = t0 + cap
        started: float | None = None
        while True:
            if d.proc.poll() is not None:
                raise RuntimeError(f"ganesha.nfsd (restart baseline) exited:\n{d.log_tail()}")
            if self.bus.name_has_owner():
                live = self.b.live_ids(self.bus.address)
                if live is not None and self.want <= live:
                    started = time.perf_counter() - t0
                    self.cpu = cpu_seconds(d.proc.pid)
                    break
            if time.perf_counter() > deadline:
                log(f"ganesha.nfsd with {len(self.want)} EXPORT blocks did not serve within {cap:g} s")
                break
            time.sleep(0.005 if cap <= 300 else 0.5)
        t0 = time.perf_counter()
        d.stop()
        return started, time.perf_counter() - t0

    cpu: float | None = None   # ganesha.nfsd's CPU time (user + system) until it served all N, of the last once()

    def close(self) -> None:
        self.d.stop()
        self.b.daemons.remove(self.d)


def raw_floor(b: Bench, mp: Path, exps) -> dict:
    """The floor of a live start over D-Bus: one AddExport per export (each its own file,
    written beforehand), sent one after the other from this already running process, with
    nothing else (no registry, no read-back); then one RemoveExport each. Seconds in all."""
    import dbus
    from ganesha_ha.backends.ganesha_bus import EXPORT_MGR_IFACE, EXPORT_MGR_PATH
    from ganesha_ha.backends.ganesha_conf import RenderOptions, render_export

    d = b.work / f"floor{len(exps)}"
    d.mkdir(exist_ok=True)
    files = []
    for e in exps:
        f = d / f"export-{e.export_id}.conf"
        f.write_text(render_export(e, mp, RenderOptions(protocols="4")))
        files.append(f)
    conn = dbus.bus.BusConnection(b.bus.address)
    try:
        def call(method, *args):
            return conn.call_blocking("org.ganesha.nfsd", EXPORT_MGR_PATH, EXPORT_MGR_IFACE, method, None, args,
                                      timeout=120)
        t0 = time.perf_counter()
        for e, f in zip(exps, files):
            call("AddExport", str(f), f"EXPORT(Export_Id={e.export_id})")
        add = time.perf_counter() - t0
        t0 = time.perf_counter()
        for e in reversed(exps):
            call("RemoveExport", dbus.UInt16(e.export_id))
        remove = time.perf_counter() - t0
    finally:
        conn.close()
    return {"add": add, "remove": remove}

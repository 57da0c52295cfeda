"""One failover of the cluster lab as a timeline: what the clients saw, what the cluster
did, and when each node was in grace, on one clock (seconds from the trigger).

`build()` is pure: the probes (labclient.Probe: monotonic `t`, `ok`, `error`), Pacemaker's
log lines and the grace intervals in, a JSON-able dict out (the report's
``failovers[i]["timeline"]``, which plot.py draws). `GraceSampler` is the one effect: a
thread asking each node's Ganesha ``get_grace`` (D-Bus, org.ganesha.nfsd.admin) every
0.2 s, because grace can end long before the lab gets round to asking (the clients'
reclaims come first).

Pacemaker's detail log (pacemaker 2.1, /var/log/pacemaker/pacemaker.log) stamps each line
with the local wall clock and no year (``Nov 30 06:45:01.123``); the lab's
clients use time.monotonic(). `build()` maps one onto the other with the pair
(time.time(), time.monotonic()) taken at the trigger.
"""
from __future__ import annotations

import datetime as _dt
import re
import threading
import time
from typing import Any, Callable, Iterable, Sequence

# controld's "Result of <op> operation for <rsc> on <node>: <result>" (pcmk__log_executor_event)
_RESULT = re.compile(r"Result of (start|stop) operation for (vol\w*)-(exports|ip) on (\S+): (\w+)")
_LOST = re.compile(r"Node (\S+) state is now lost")
_STAMP = re.compile(r"^([A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?)")
ACTIONS = ("stop", "start", "ip up", "node lost")   # what the plot shows, in its legend's order


def log_time(line: str, year: int) -> float | None:
    """The wall-clock time (epoch seconds, local time) that starts a Pacemaker log line."""
    m = _STAMP.match(line)
    if m is None:
        return None
    stamp = " ".join(m.group(1).split())
    fmt = "%Y %b %d %H:%M:%S.%f" if "." in stamp else "%Y %b %d %H:%M:%S"
    try:
        return _dt.datetime.strptime(f"{year} {stamp}", fmt).timestamp()
    except ValueError:
        return None


def cluster_actions(lines: Iterable[tuple[str, str]], wall0: float) -> list[dict[str, Any]]:
    """[(node whose log, raw line)] → the volumes' stops, starts, IPs up and lost nodes, as
    {"t": seconds from wall0, "action", "volume" (None for a node), "node", "ok"}, by time."""
    year = _dt.datetime.fromtimestamp(wall0).year
    out = []
    seen: set[tuple] = set()
    for logged_by, line in lines:
        t = log_time(line, year)
        if t is None:
            continue
        m = _RESULT.search(line)
        if m:
            op, vol, rsc, node, result = m.groups()
            if rsc == "ip" and op == "stop":
                continue
            action = "ip up" if rsc == "ip" else op
            item = {"t": round(t - wall0, 3), "action": action, "volume": vol, "node": node,
                    "ok": result == "ok"}
        else:
            m = _LOST.search(line)
            if m is None:
                continue
            item = {"t": round(t - wall0, 3), "action": "node lost", "volume": None, "node": m.group(1),
                    "ok": True}
        key = (item["action"], item["volume"], item["node"])
        if item["action"] == "node lost" and key in seen:   # every survivor logs the loss
            continue
        seen.add(key)
        out.append(item)
    return sorted(out, key=lambda a: a["t"])


def io_points(probes: Iterable[Any], t0: float, since: float, until: float) -> list[list]:
    """Probes begun in [since, until] (monotonic) as [[t - t0, ok, error], ...]."""
    return [[round(p.t - t0, 3), bool(p.ok), p.error] for p in probes if since <= p.t <= until]


def build(*, t0: float, wall0: float, t_end: float, volumes: dict[str, dict[str, Any]],
          log_lines: Sequence[tuple[str, str]], grace: dict[str, list[tuple[float, float]]],
          before: float = 1.0) -> dict[str, Any]:
    """The timeline of one failover.

    `t0`/`wall0`: time.monotonic()/time.time() at the trigger; `t_end`: monotonic end of the
    window. `volumes`: name → {"moved": bool, "from", "to", "reads": probes, "writes":
    probes}. `log_lines`: [(node, Pacemaker log line)]. `grace`: node → [(start, end)]
    monotonic. Returns {"span": [start, end], "volumes": {...}, "actions": [...],
    "grace": [{"node", "start", "end"}]} in seconds from the trigger.
    """
    since = t0 - before
    vols = {}
    for name, v in volumes.items():
        vols[name] = {"moved": bool(v["moved"]), "from": v.get("from"), "to": v.get("to"),
                      "reads": io_points(v.get("reads", ()), t0, since, t_end),
                      "writes": io_points(v.get("writes", ()), t0, since, t_end)}
    return {
        "span": [round(-before, 3), round(t_end - t0, 3)],
        "volumes": vols,
        "actions": [a for a in cluster_actions(log_lines, wall0) if -before <= a["t"] <= t_end - t0],
        "grace": [{"node": node, "start": round(max(a, since) - t0, 3), "end": round(min(b, t_end) - t0, 3)}
                  for node, spans in sorted(grace.items()) for a, b in spans if b >= since and a <= t_end],
    }


class GraceSampler:
    """Samples `probe(node)` (True: in grace, False: not, None: no answer) for each of
    `nodes` every `interval` s in a thread, from `start()` to `stop()`; `spans()` gives the
    grace intervals seen, node → [(start, end)] in time.monotonic()."""

    def __init__(self, nodes: Sequence[str], probe: Callable[[str], bool | None],
                 interval: float = 0.2) -> None:
        self.nodes = list(nodes)
        self.probe = probe
        self.interval = interval
        self._samples: dict[str, list[tuple[float, bool]]] = {n: [] for n in self.nodes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gha-lab-grace", daemon=True)

    def start(self) -> "GraceSampler":
        self._thread.start()
        return self

    def stop(self) -> dict[str, list[tuple[float, float]]]:
        self._stop.set()
        self._thread.join(10)
        return self.spans()

    def _run(self) -> None:
        while not self._stop.is_set():
            for n in self.nodes:
                t = time.monotonic()
                try:
                    state = self.probe(n)
                except Exception:   # a node being killed answers nothing: no sample
                    state = None
                if state is not None:
                    self._samples[n].append((t, state))
            self._stop.wait(self.interval)

    def spans(self) -> dict[str, list[tuple[float, float]]]:
        return {n: grace_spans(s) for n, s in self._samples.items() if grace_spans(s)}


def grace_spans(samples: Sequence[tuple[float, bool]]) -> list[tuple[float, float]]:
    """[(t, in grace)] in time order → [(first in-grace sample, first sample after it that
    is not)]; a span still open at the last sample ends there."""
    out: list[tuple[float, float]] = []
    start = None
    for t, g in samples:
        if g and start is None:
            start = t
        elif not g and start is not None:
            out.append((start, t))
            start = None
    if start is not None:
        out.append((start, samples[-1][0]))
    return out

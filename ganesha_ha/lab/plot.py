"""`ganesha-ha lab --plot FILE`: each failover of the cluster lab as a picture.

One panel per failover, on the clock of its trigger (t = 0): a lane per volume (the moved
ones first) with the client's reads of its saved handle and the writes of its stream, each
a tick, green when the server answered and red when it did not; the cluster's actions on
that volume (its exports stopped, started, its floating IP up, from Pacemaker's log); a
lost node; and each node's grace window, shaded. The data is the report's
``failovers[i]["timeline"]`` (timeline.py), recorded when the lab runs with --plot.

matplotlib is an optional extra (``pip install ganesha-ha[plot]``, Debian
python3-matplotlib): imported here only, and this module only by the lab's CLI when --plot
is given, so neither the agent nor the CLI ever pays for it. `figure()` is the pure step
(report in, `matplotlib.figure.Figure` out, no pyplot, no global state); `save_plot()`
writes it.
"""
from __future__ import annotations

from typing import Any

from ..errors import GaneshaHAError

ACTION_STYLE = {   # action (timeline.ACTIONS) -> (colour, label on the panel)
    "stop": ("tab:orange", "stop"),
    "start": ("tab:blue", "start"),
    "ip up": ("tab:purple", "IP up"),
    "node lost": ("black", "lost"),
}
OK_COLOUR, FAIL_COLOUR = "tab:green", "tab:red"
GRACE_COLOURS = ("tab:olive", "tab:cyan", "tab:pink", "tab:gray", "tab:brown")


class PlotUnavailable(GaneshaHAError):
    """--plot cannot draw: matplotlib is not installed (the lab's exit code 3)."""

    exit_code = 3


def require_matplotlib() -> None:
    """PlotUnavailable, with how to install it, unless matplotlib can be imported."""
    import importlib

    try:
        importlib.import_module("matplotlib")     # imported to see that it imports; plotting imports it again
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib, an optional extra: apt-get install python3-matplotlib "
                              "(Debian) or pip install 'ganesha-ha[plot]'") from None


def _lanes(tl: dict[str, Any]) -> list[str]:
    """Volume names, moved first, each group in name order (vol2 before vol10)."""
    def key(name: str) -> tuple:
        digits = "".join(c for c in name if c.isdigit())
        return (not tl["volumes"][name]["moved"], int(digits) if digits else 0, name)
    return sorted(tl["volumes"], key=key)


def _lane_label(name: str, v: dict[str, Any]) -> str:
    if v["moved"]:
        return f"{name}: {v.get('from') or '?'} \u2192 {v.get('to') or '?'}"
    return f"{name}: stays on {v.get('to') or '?'}"


def _panel(ax, fo: dict[str, Any], nodes: list[str], grace_of: str = "grace on") -> None:
    tl = fo["timeline"]
    lanes = _lanes(tl)
    y_of = {name: len(lanes) - 1 - i for i, name in enumerate(lanes)}   # first lane on top
    points: dict[str, tuple[list, list]] = {f"{io}-{res}": ([], []) for io in ("reads", "writes")
                                            for res in ("ok", "failed")}
    for name in lanes:
        v = tl["volumes"][name]
        for io, dy in (("reads", 0.15), ("writes", -0.15)):
            for t, ok, *_ in v[io]:
                xs, ys = points[f"{io}-{'ok' if ok else 'failed'}"]
                xs.append(t)
                ys.append(y_of[name] + dy)
    for key, (xs, ys) in points.items():
        io, res = key.split("-")
        ax.scatter(xs, ys, marker="|" if res == "ok" else "x", s=40 if res == "ok" else 22,
                   color=OK_COLOUR if res == "ok" else FAIL_COLOUR, linewidths=1, gid=key,
                   label=f"{'read of the saved handle' if io == 'reads' else 'write of the stream'} "
                         f"{'answered' if res == 'ok' else 'failed'}")
    for g in tl.get("grace", []):   # one colour per node, the same in every panel
        k = nodes.index(g["node"]) if g["node"] in nodes else len(nodes)
        ax.axvspan(g["start"], g["end"], color=GRACE_COLOURS[k % len(GRACE_COLOURS)], alpha=0.18,
                   gid=f"grace:{g['node']}", label=f"{grace_of} {g['node']}")
    ax.axvline(0, color="black", linewidth=1.2, gid="trigger")
    ax.text(0, len(lanes) - 0.45, f" {fo['kind']}", fontsize=8, va="bottom", ha="left")
    for a in tl.get("actions", []):
        colour, label = ACTION_STYLE.get(a["action"], ("gray", a["action"]))
        if a["volume"] is None or a["volume"] not in y_of:
            ax.axvline(a["t"], color=colour, linestyle="--", linewidth=1, gid=f"action:{a['action']}:{a['node']}")
            ax.text(a["t"], len(lanes) - 0.45, f" {a['node']} {label}", fontsize=7, va="bottom", color=colour)
            continue
        y = y_of[a["volume"]]
        ax.vlines(a["t"], y - 0.35, y + 0.35, color=colour, linewidth=2.2,
                  gid=f"action:{a['action']}:{a['volume']}")
        below = a["action"] == "ip up"   # it follows the start closely: its label goes under the lane
        ax.text(a["t"], y - 0.36 if below else y + 0.36, f"{label} {a['node']}" if a["ok"] else f"{label} FAILED",
                fontsize=6.5, color=colour, ha="center", va="top" if below else "bottom")
    ax.set_yticks([y_of[n] for n in lanes], [_lane_label(n, tl["volumes"][n]) for n in lanes], fontsize=8)
    ax.set_ylim(-0.6, len(lanes) - 0.1)
    lo, hi = tl["span"]
    ax.set_xlim(lo, hi + 0.2)
    outage = fo.get("outage_s")
    ax.set_title(f"{fo['n']}. {fo['kind']}: {fo.get('from')} \u2192 {fo.get('to')}; worst outage "
                 f"{'-' if outage is None else f'{outage:.2f} s'}" + ("" if fo.get("ok") else "  (FAILED)"),
                 fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)


def figure(report: dict[str, Any]):
    """The lab's report → a matplotlib Figure: one panel per failover that has a timeline
    (in report order), x in seconds from its trigger. ValueError if none has one."""
    require_matplotlib()
    from matplotlib.figure import Figure

    fos = [f for f in report.get("failovers", []) if f.get("timeline")]
    if not fos:
        raise ValueError("no failover with a timeline in this report (the lab records them with --plot)")
    heights = [1.2 + 0.45 * len(f["timeline"]["volumes"]) for f in fos]
    fig = Figure(figsize=(11, sum(heights) + 0.9), layout="constrained")
    axes = fig.subplots(len(fos), 1, squeeze=False, height_ratios=heights)[:, 0]
    nodes = list(report.get("nodes") or [])
    instance = report.get("ganesha_mode") == "instance"
    for ax, fo in zip(axes, fos):   # with an instance per volume, a node's grace is its instances'
        _panel(ax, fo, nodes, "a volume's own instance in grace on" if instance else "grace on")
    axes[-1].set_xlabel("seconds from the failover's trigger")
    handles: dict[str, Any] = {}
    for ax in axes:   # one legend for the figure: each artist kind once
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    # beside the top panel: constrained layout (matplotlib 3.6, Debian 12) makes room for it
    axes[0].legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   fontsize=7, frameon=False)
    fig.suptitle(f"ganesha-ha lab {report.get('run_id', '')}: {len(nodes)}-node cluster, server "
                 f"{report.get('server')}" + (" (a Ganesha instance per volume)" if instance else "")
                 + f", grace period {report.get('grace_period_s')} s", fontsize=10)
    return fig


def save_plot(report: dict[str, Any], path: str) -> None:
    """Draw `report` (figure()) into `path`; the format follows its suffix (png, svg, pdf)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = figure(report)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130)

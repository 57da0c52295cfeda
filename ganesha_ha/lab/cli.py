"""`ganesha-ha lab ...`: argument parsing, exit codes and output of the failover labs.

    ganesha-ha lab [--server ganesha|knfsd] [--ganesha-mode shared|instance] [--show-cib]
                   [--kinds move,shutdown,kill,loss] [--nodes N] [--plot FILE] [--nfs-version 4.0|4.1]
                   [--grace-period S] [--nlm|--no-nlm] [--json] [--keep] [--break lying-monitor|server-scope]
    ganesha-ha lab --direct [--server ganesha|knfsd] [--failovers N] [--kill] [--json] [--keep]
                   [--nfs-version 4.0|4.1] [--grace-period S] [--nlm|--no-nlm]
                   [--break export-id|recovery|server-scope] [--fsal 'NAME(key=value,...)']
    ganesha-ha lab down [RUN_ID]

The lab runs under a real two-node Pacemaker cluster (cluster_lab.py), which decides every
failover; --direct runs the agent by hand instead (direct_lab.py: one volume, faster). An option
only the direct lab has (--failovers, --kill, --fsal, --break export-id or recovery) selects it.

Exit codes: 0 every failover held and nothing was left behind; 1 a check failed (the
evidence says which); 2 bad arguments; 3 the lab cannot run here (not root, a program
missing, or matplotlib for --plot); 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

from .report import render_cluster_text, render_text

NLM_DEFAULT = True    # an NFSv3 client with an NLM lock in every run (--no-nlm: none)
REQUIRED = {
    "ganesha": ("ganesha.nfsd", "dbus-daemon", "nsenter", "losetup", "mkfs.ext4", "mount", "umount"),
    "knfsd": ("exportfs", "nsenter", "losetup", "mkfs.ext4", "mount", "umount"),
    "cluster": ("corosync", "pacemakerd", "crm", "crm_resource", "cibadmin", "unshare"),
    "nlm": ("rpcbind", "rpc.statd", "sm-notify", "rpcinfo"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError("expected 1..1000")
    return n


def _nodes(text: str) -> int:
    from .layout import MAX_NODES

    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 2 <= n <= MAX_NODES:
        raise argparse.ArgumentTypeError(f"expected 2..{MAX_NODES}")
    return n


def _grace(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if not 5 <= n <= 270:   # Ganesha's own range is 0..270 (nfs_read_conf.c); below 5 nobody reclaims
        raise argparse.ArgumentTypeError("expected 5..270 seconds")
    return n


def _kinds(text: str) -> tuple[str, ...]:
    from .cluster_lab import KINDS

    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    wrong = [k for k in kinds if k not in KINDS]
    if wrong or not kinds:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(KINDS)}")
    return kinds


def build_parser() -> argparse.ArgumentParser:
    from .base import BREAKS as COMMON_BREAKS
    from .base import GANESHA_GRACE_PERIOD
    from .cluster_lab import BREAKS as CLUSTER_BREAKS
    from .cluster_lab import KINDS
    from .direct_lab import BREAKS
    from .layout import MAX_NODES

    breaks = {**BREAKS, **CLUSTER_BREAKS, **COMMON_BREAKS}

    p = _Parser(prog="ganesha-ha lab",
                description="Two-node NFS failovers on this machine (network namespaces, loop "
                            "devices as the shared volumes, the real resource agent and NFS server), "
                            "decided by a real corosync/Pacemaker cluster, with a client that keeps "
                            "its file handles across every move. --direct drives the agent by hand.",
                epilog="'ganesha-ha lab down [RUN_ID]' tears down a lab left up with --keep.")
    p.add_argument("--server", choices=["ganesha", "knfsd"], default="ganesha")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--cluster", action="store_true",
                      help="(the default) a real two-node corosync/Pacemaker cluster decides every "
                           "failover of two active-active volumes")
    mode.add_argument("--direct", action="store_true",
                      help="drive the resource agent by hand instead: one volume, no cluster")
    p.add_argument("--kinds", type=_kinds, default=None, metavar="K,K",
                   help="the cluster's failovers, in order (default all: "
                        + "; ".join(f"{k}: {v}" for k, v in KINDS.items()) + ")")
    p.add_argument("--ganesha-mode", choices=["shared", "instance"], default=None,
                   help="the cluster lab's Ganesha: shared, the node's one ganesha.nfsd serving every volume "
                        "(default); instance, a ganesha.nfsd of each volume's own, started by the agent after "
                        "the IP (NFSv4 only: no NLM). Either way a client of each volume that does not move "
                        "opens new files throughout, and the report says how long they got NFS4ERR_GRACE; "
                        "with instance the lab fails if they got any")
    p.add_argument("--nodes", type=_nodes, default=None, metavar="N",
                   help=f"cluster nodes (2 to {MAX_NODES}, default 2): from 3 on, two volumes prefer each "
                        "node, each node holds at most 3 (utilization), so a failed node's two volumes "
                        "land on different survivors; every failover is followed by a watched fail-back")
    p.add_argument("--plot", metavar="FILE",
                   help="draw a timeline of each failover (clients' I/O per volume, the cluster's "
                        "stops, starts and IPs up, the grace window) into FILE (.png, .svg, .pdf); "
                        "needs matplotlib (Debian: python3-matplotlib; pip: ganesha-ha[plot])")
    p.add_argument("--show-cib", action="store_true",
                   help="print the crmsh script loaded and the CIB the cluster ran")
    p.add_argument("--failovers", type=_positive, default=None, metavar="N",
                   help="--direct: move the volume N times: A->B->A... (default 1)")
    p.add_argument("--kill", action="store_true",
                   help="--direct: fail over by kill -9 of the active node's ganesha.nfsd")
    p.add_argument("--fsal", metavar="NAME(key=value,...)",
                   help="--direct: one more export with this FSAL (the CLI's syntax, for example "
                        "MEM(Inode_Size=65536) or NULL(VFS)); GLUSTER or CEPH without their server options "
                        "run a one-node GlusterFS or Ceph cluster on a storage machine of the lab. Each "
                        "failover must keep its Export_Id, serve it on the new node and, unless it is MEM, "
                        "keep its handles and data")
    p.add_argument("--nfs-version", choices=["4.0", "4.1"], default="4.1",
                   help="the NFSv4 clients' minor version (default 4.1, as Linux clients mount: "
                        "sessions, RECLAIM_COMPLETE, the server scope checked before a reclaim)")
    p.add_argument("--grace-period", type=_grace, default=5, metavar="S",
                   help=f"Ganesha's Grace_Period in seconds (default 5, short for a quick run; "
                        f"{GANESHA_GRACE_PERIOD} is Ganesha's own default): every failover reports how "
                        "long each volume's clients could not open new files")
    p.add_argument("--nlm", action=argparse.BooleanOptionalAction, default=None,
                   help="Ganesha with NFSv3 + NLM (rpcbind and rpc.statd on each node) and an NFSv3 "
                        "client holding an NLM lock across every failover (default: "
                        f"{'on' if NLM_DEFAULT else 'off'}, off with --ganesha-mode instance). With NLM on "
                        "Ganesha's grace always runs its whole Grace_Period; off, it ends once every NFSv4.1 "
                        "client reclaimed")
    p.add_argument("--json", action="store_true", help="print the evidence as one JSON object")
    p.add_argument("--keep", action="store_true",
                   help="leave the lab up afterwards for exploring ('ganesha-ha lab down' removes it)")
    p.add_argument("--break", dest="breaks", action="append", default=[], choices=sorted(breaks),
                   metavar="WHAT", help="break the proof on purpose (the lab must then fail): "
                   + "; ".join(f"{k}: {v}" for k, v in breaks.items())
                   + f" ({', '.join(BREAKS)} with --direct only)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: list[str], config: str | None = None) -> int:
    argv = list(argv)
    if argv and argv[0] == "down":
        return _down(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ganesha_mode == "instance" and args.nlm:
        parser.error("--ganesha-mode instance serves NFSv4 only (a volume's own ganesha.nfsd runs no NLM): "
                     "drop --nlm")
    args.nlm = (NLM_DEFAULT and args.ganesha_mode != "instance") if args.nlm is None else args.nlm
    if args.ganesha_mode == "instance" and "server-scope" in args.breaks:
        parser.error("--break server-scope breaks the nodes' shared Ganesha; an instance's scope is its volume's")
    if "server-scope" in args.breaks and (args.nfs_version != "4.1" or args.server != "ganesha"):
        parser.error("--break server-scope needs NFSv4.1 clients of Ganesha (a 4.0 client knows no scope)")
    from .direct_lab import BREAKS as DIRECT_BREAKS

    # options only the direct lab has select it (as older scripts and the benchmark call it)
    direct_only = (args.kill or args.failovers is not None or set(args.breaks) & set(DIRECT_BREAKS)
                   or args.fsal is not None)
    if args.cluster and direct_only:
        parser.error("--kill, --failovers, --fsal and --break export-id|recovery are for the direct "
                     "lab (--direct); the cluster lab takes its failovers from --kinds")
    if not (args.direct or direct_only):
        return _cluster(parser, args)
    from .cluster_lab import BREAKS as CLUSTER_BREAKS

    if (args.show_cib or set(args.breaks) & set(CLUSTER_BREAKS) or args.kinds is not None
            or args.nodes is not None or args.plot is not None or args.ganesha_mode is not None):
        parser.error("--kinds, --nodes, --plot, --show-cib, --ganesha-mode and --break lying-monitor are "
                     "for the cluster lab (without --direct)")
    args.failovers = args.failovers or 1
    problem = _preflight(args.server, extra=_nlm_programs(args))
    if problem:
        print(f"ganesha-ha lab: {problem}", file=sys.stderr)
        return 3
    from .base import Progress
    from .direct_lab import DirectLab, DirectLabOptions

    lab_class = DirectLab
    if args.server == "knfsd":
        from .knfsd_lab import KnfsdLab as lab_class
    if args.fsal is not None:
        if args.server != "ganesha":
            parser.error("--fsal needs --server ganesha")
        from ..errors import GaneshaHAError
        from ..fsal import parse_spec
        from .direct_fsal import complete_spec, storage_kind

        kind = storage_kind(args.fsal)
        try:   # with a lab-made cluster, checked with the options the lab adds
            parse_spec(complete_spec(args.fsal, {"volume": "v", "hostname": "h"} if kind == "gluster" else
                                     {"ceph_conf": "/c", "user_id": "u"} if kind == "ceph" else {}) if kind else args.fsal)
        except GaneshaHAError as exc:
            parser.error(f"--fsal: {exc}")
        if kind:
            from .storage import STORAGE

            missing = STORAGE[kind].missing()
            if missing:
                print(f"ganesha-ha lab: --fsal {args.fsal.split('(')[0]} runs a one-node cluster here: missing "
                      f"program(s) {', '.join(missing)} (Debian: {STORAGE[kind].package})", file=sys.stderr)
                return 3
    opts = DirectLabOptions(server=args.server, failovers=args.failovers, kill=args.kill,
                            keep=args.keep, breaks=tuple(dict.fromkeys(args.breaks)), fsal=args.fsal,
                            **_common(args))
    report = lab_class(opts, Progress(enabled=not args.quiet)).run()
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=False))
    else:
        print(render_text(report))
    if report.get("interrupted"):
        return 130
    return 0 if report["ok"] else 1


def _cluster(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """`lab --cluster`: the same proof with Pacemaker deciding every failover."""
    from .cluster_lab import BREAKS, KINDS, ClusterLab, ClusterLabOptions
    from .base import Progress

    if args.server == "knfsd":
        from .cluster_failover import KNFSD_KINDS

        args.kinds = args.kinds or KNFSD_KINDS
        if set(args.kinds) - set(KNFSD_KINDS):
            parser.error(f"with --server knfsd, --kinds takes {', '.join(KNFSD_KINDS)} "
                         "(knfsd has no userspace daemon to kill -9)")
    from .base import BREAKS as COMMON_BREAKS

    if set(args.breaks) - set(BREAKS) - set(COMMON_BREAKS):
        parser.error(f"the cluster lab's --break takes {', '.join([*BREAKS, *COMMON_BREAKS])}; "
                     "the others need --direct")
    if args.ganesha_mode is not None and args.server != "ganesha":
        parser.error("--ganesha-mode is how Ganesha serves the volumes: it needs --server ganesha")
    args.kinds = args.kinds or tuple(KINDS)
    if args.plot is not None and args.server != "ganesha":
        parser.error("--plot draws the clients' I/O: it needs --server ganesha")
    problem = _preflight(args.server, extra=REQUIRED["cluster"] + REQUIRED["ganesha"][:2] + _nlm_programs(args))
    if problem is None and args.plot is not None:
        problem = _plot_preflight(args.plot)
    if problem:
        print(f"ganesha-ha lab: {problem}", file=sys.stderr)
        return 3
    opts = ClusterLabOptions(server=args.server, kinds=args.kinds, breaks=tuple(dict.fromkeys(args.breaks)),
                             keep=args.keep, nodes=args.nodes or 2, timeline=args.plot is not None,
                             ganesha_mode=args.ganesha_mode or "shared", **_common(args))
    report = ClusterLab(opts, Progress(enabled=not args.quiet)).run()
    if args.plot is not None:
        from .plot import save_plot

        try:
            save_plot(report, args.plot)
            report["plot"] = args.plot
        except (ValueError, OSError) as exc:   # no failover got as far as a timeline; disk full
            print(f"ganesha-ha lab: --plot {args.plot}: {exc}", file=sys.stderr)
    if args.json:
        if not args.show_cib:
            report.pop("cib", None)
        print(json.dumps(report, indent=2))
    else:
        print(render_cluster_text(report))
        if args.show_cib and report.get("crmsh"):
            print(f"\n# crmsh script the lab loaded (crm configure load update FILE)\n{report['crmsh']}")
            print(f"# the CIB configuration the cluster ran (cibadmin --query --scope configuration)\n"
                  f"{report.get('cib', '(not read)')}")
    if report.get("interrupted"):
        return 130
    return 0 if report["ok"] else 1


def _plot_preflight(path: str) -> str | None:
    """Before a lab run: matplotlib is there and `path` can be written."""
    from .plot import PlotUnavailable, require_matplotlib

    try:
        require_matplotlib()
    except PlotUnavailable as exc:
        return str(exc)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        return f"--plot {path}: directory {parent} is not writable"
    return None


def _common(args: argparse.Namespace) -> dict:
    """The options both labs take (base.LabOptions); NFSv4 and NLM only mean something with
    Ganesha."""
    ganesha = args.server == "ganesha"
    return {"grace_period": args.grace_period, "nfs_version": args.nfs_version, "nlm": args.nlm and ganesha}


def _nlm_programs(args: argparse.Namespace) -> tuple[str, ...]:
    return REQUIRED["nlm"] if args.nlm and args.server == "ganesha" else ()


def _preflight(server: str, extra: tuple[str, ...] = ()) -> str | None:
    if os.geteuid() != 0:
        return "needs root (network and mount namespaces, a loop device, NFS servers)"
    missing = [p for p in (*REQUIRED[server], *extra) if shutil.which(p) is None
               and not os.path.exists(f"/usr/sbin/{p}")]
    if missing:
        return "missing program(s): " + ", ".join(missing)
    return None


def _down(argv: list[str]) -> int:
    p = _Parser(prog="ganesha-ha lab down", description="tear down labs left up with --keep")
    p.add_argument("run_id", nargs="?", help="one lab (default: every kept lab)")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("ganesha-ha lab down: needs root", file=sys.stderr)
        return 3
    from .down import down

    n, left = down(args.run_id)
    if n == 0:
        print("no kept lab found" + (f" with id {args.run_id}" if args.run_id else ""))
        return 0 if args.run_id is None else 4
    for item in left:
        print(f"left behind: {item}", file=sys.stderr)
    print(f"tore down {n} lab(s)" + ("" if not left else f"; {len(left)} item(s) could not be removed"))
    return 0 if not left else 1

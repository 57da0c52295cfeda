"""The grammar of the `ganesha-ha` command line (argparse): every command, option and help
text; what a parse yields is carried out by cli.py. A usage error is one line and exit 2,
like every other input error.
"""
from __future__ import annotations

import argparse

from . import __version__
from .formats import FORMATS
from .servers import BACKENDS, MODES, SERVERS, SHARED


def _id_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, e.g. 2000-2999, got {text!r}") from None
    return lo, hi


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other input error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ganesha-ha", description="Highly available NFS exports for knfsd and NFS-Ganesha.")
    p.add_argument("--version", action="version", version=f"ganesha-ha {__version__}")
    p.add_argument("--config", metavar="FILE", help="settings file (default /etc/ganesha-ha/ganesha-ha.conf)")
    sub = p.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    vol = sub.add_parser("volume", help="initialise and operate a shared volume")
    vsub = vol.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    vsub.required = True
    v = vsub.add_parser("init", help="create the volume's registry (<mount point>/.ganesha-ha)")
    v.add_argument("mountpoint")
    v.add_argument("--server", required=True, choices=SERVERS,
                   help="; ".join(f"{b.name}: {b.description}" for b in BACKENDS))
    v.add_argument("--id-range", type=_id_range, metavar="LOW-HIGH",
                   help="Export_Ids this volume may use, apart from the ranges of the shared volumes "
                        "mounted here and the ids this node's server serves (default: a random free block)")
    v.add_argument("--ganesha-mode", choices=MODES, default=SHARED,
                   help="shared: served by the node's Ganesha with the other volumes (default); instance: "
                        "by a ganesha.nfsd of its own that the agent starts on the floating IP (a take-over's "
                        "grace stalls only this volume's clients)")
    v.add_argument("--grace-period", type=int, metavar="S",
                   help="instance mode: the instance's Grace_Period in seconds, kept on the volume so that "
                        "every node starts it alike (default: the node's [instance] grace_period)")
    v.add_argument("--lease-lifetime", type=int, metavar="S",
                   help="instance mode: the instance's Lease_Lifetime in seconds (default: the node's "
                        "[instance] lease_lifetime)")
    v.add_argument("--json", action="store_true")
    v = vsub.add_parser("set-range", help="move or widen the volume's Export_Id range (it must hold every "
                                          "export's id; retired ids stay retired)")
    v.add_argument("mountpoint")
    v.add_argument("id_range", type=_id_range, metavar="LOW-HIGH")
    v.add_argument("--json", action="store_true")
    v = vsub.add_parser("set-times", help="instance mode: change the Grace_Period/Lease_Lifetime the volume gives "
                                          "its instance (from its next start)")
    v.add_argument("mountpoint")
    v.add_argument("--grace-period", type=int, metavar="S", help="the instance's Grace_Period in seconds")
    v.add_argument("--lease-lifetime", type=int, metavar="S", help="the instance's Lease_Lifetime in seconds")
    v.add_argument("--json", action="store_true")
    for name, text in (("start", "make all exports live on this node (what the agent's start does)"),
                       ("stop", "withdraw all exports from this node (what the agent's stop does)"),
                       ("status", "registry and live state of the volume"),
                       ("monitor", "one monitor pass: compare, repair drift, save recovery state")):
        v = vsub.add_parser(name, help=text)
        v.add_argument("mountpoint")
        v.add_argument("--ip", help="the volume's floating IP (recovery key and grace take-over)")
        v.add_argument("--json", action="store_true")

    exp = sub.add_parser("export", help="add, change, remove and list a volume's exports")
    esub = exp.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    esub.required = True

    def change_options(e: argparse.ArgumentParser, adding: bool) -> None:
        rules = ("without rw or ro a client is read-only (exports(5)); when several specs match a client, a "
                 "single host wins over a network (longest prefix first), a network over a wildcard name, a "
                 "wildcard over a @netgroup, any of them over *, on both servers")
        if adding:
            e.add_argument("--client", action="append", dest="clients", metavar="CLIENT", required=True,
                           help="a client spec with its options, SPEC(OPTION,...), repeatable, for example "
                                "192.0.2.0/24(rw); " + rules)
        else:
            e.add_argument("--client", action="append", dest="clients", metavar="CLIENT",
                           help="SPEC(OPTION,...): the new client list, replacing the whole list (repeatable); "
                                "to add or remove one client, use --add-client or --remove-client; " + rules)
            e.add_argument("--add-client", action="append", dest="add_clients", default=[], metavar="CLIENT",
                           help="SPEC(OPTION,...): add a client (or replace the options of a client the export "
                                "has), repeatable; without rw or ro it is read-only")
            e.add_argument("--remove-client", action="append", dest="remove_clients", default=[], metavar="SPEC",
                           help="remove a client, repeatable")
        e.add_argument("--pseudo", metavar="PATH", help="NFSv4 pseudo path" + (" (default: the directory's path)"
                                                                                  if adding else ""))
        e.add_argument("--export-id", type=_int, metavar="N",
                       help="Ganesha Export_Id (default: allocated)" if adding else
                       "new Ganesha Export_Id (needs --force: clients get stale file handles)")
        e.add_argument("--fsid", metavar="F", help="knfsd fsid, a number or UUID (default: generated once)" if adding
                       else "new knfsd fsid (needs --force: clients get stale file handles)")
        e.add_argument("--access", choices=["RW", "RO", "None"], default="RW" if adding else None,
                       help="access cap for every client" + (" (default RW: each client's own rw/ro decides)"
                                                             if adding else "; each client's own rw/ro decides within it"))
        e.add_argument("--squash", choices=["root_squash", "no_root_squash", "all_squash"],
                       default="root_squash" if adding else None,
                       help="squash for clients that do not set their own" + (" (default root_squash)"
                                                                                if adding else ""))
        # not metavar="NAME(key=value,...)": argparse drops the parentheses of a usage line
        # ("[--fsal NAMEkey=value,...]"), a syntax nobody can type
        e.add_argument("--fsal", metavar="FSAL", default="VFS" if adding else None,
                       help="NAME or NAME(key=value,...): Ganesha FSAL and its options"
                            + (" (default VFS)" if adding else
                                                               ", replacing the whole FSAL")
                            + ", for example MEM(Inode_Size=65536), "
                            "NULL(VFS), PROXY_V4(Srv_Addr=192.0.2.7) or CEPH(user_id=nfs,"
                            "secret_access_key=@/root/ceph.key): key=@FILE reads a value from FILE. "
                            "For CEPH, GLUSTER, RGW, PROXY_V4 and MEM the "
                            "directory is the absolute path in the FSAL's own namespace (see README: FSALs); "
                            "quote the whole option for the shell")
        e.add_argument("--record-only", action="store_true",
                       help="change the registry only; the next start or monitor applies it")
        e.add_argument("--force", action="store_true",
                       help=("take an Export_Id or fsid that a removed export had" if adding else
                             "change the Export_Id or fsid (clients that have the export mounted get stale "
                             "file handles), or take one that a removed export had")
                       + "; export even with file handles that would go stale on another node (fsid_type "
                         "Dev/Device, Ganesha's fsid_device = true), with a warning")
        e.add_argument("--json", action="store_true")

    e = esub.add_parser("add", help="export a directory of the volume (or a path of an FSAL's own namespace)")
    e.add_argument("mountpoint")
    e.add_argument("directory", metavar="DIRECTORY|PATH")
    change_options(e, True)
    e = esub.add_parser("update", help="change an export (live when the volume is active here)")
    e.add_argument("mountpoint")
    e.add_argument("export", metavar="DIRECTORY|PATH|EXPORT_ID")
    change_options(e, False)
    e = esub.add_parser("remove", help="stop exporting a directory and forget it")
    e.add_argument("mountpoint")
    e.add_argument("export", metavar="DIRECTORY|EXPORT_ID")
    e.add_argument("--record-only", action="store_true",
                   help="change the registry only; the next start or monitor withdraws it")
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("list", help="list exports (all volumes mounted here when none is named)")
    e.add_argument("mountpoint", nargs="?")
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("show", help="one export in full")
    e.add_argument("mountpoint")
    e.add_argument("export", metavar="DIRECTORY|EXPORT_ID")
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("apply", help="bring the volume's exports to a description (adds, updates and removes, "
                                      "one transaction)")
    e.add_argument("mountpoint")
    e.add_argument("-i", "--input", required=True, metavar="FILE|-",
                   help="the description: a JSON list (every export of the volume: the others are removed) or "
                        "object (one export), as export list --json prints; an exports(5) file or Ganesha "
                        "EXPORT blocks (every export of the volume)")
    e.add_argument("--format", choices=FORMATS, help="the form of the input (default: recognised)")
    e.add_argument("--check", action="store_true", help="print what would change, change nothing")
    e.add_argument("--force", action="store_true", help="allow Export_Id or fsid changes (stale file handles)")
    e.add_argument("--record-only", action="store_true",
                   help="change the registry only; the next start or monitor applies it")
    e.add_argument("--json", action="store_true")
    e = esub.add_parser("dump", help="write the volume's exports as JSON, an exports(5) file or Ganesha EXPORT "
                                     "blocks (export apply -i takes it back)")
    e.add_argument("mountpoint")
    e.add_argument("--format", choices=FORMATS, default="json", help="default json")

    im = sub.add_parser("import", help="take existing exports into a volume's registry: ocf:heartbeat:exportfs "
                                       "primitives, /etc/exports or Ganesha EXPORT blocks (a dry run without --apply)")
    im.add_argument("source", choices=("cib", "exports", "ganesha"),
                    help="cib: the exportfs primitives of the CIB (cibadmin --query, or --file); exports: "
                         "/etc/exports and /etc/exports.d/*.exports; ganesha: the node's Ganesha config "
                         "([ganesha] ganesha_config)")
    im.add_argument("mountpoint")
    im.add_argument("--file", metavar="FILE|-", help="read this file (or stdin) instead")
    im.add_argument("--apply", action="store_true", help="write the registry (without it: print only)")
    im.add_argument("--skip-conflicts", action="store_true",
                    help="with --apply, take what can be taken and leave the refused exports out")
    im.add_argument("--force", action="store_true", help="take an Export_Id or fsid that a removed export had")
    im.add_argument("--resource-id", metavar="ID", help="cib: the new resource's id (default: from the group)")
    im.add_argument("--json", action="store_true")

    ia = sub.add_parser("install-agent", help="install the OCF agents ocf:ganesha-ha:exports and "
                                              "ocf:ganesha-ha:notify")
    ia.add_argument("--ocf-root", default="/usr/lib/ocf", help="OCF root (default /usr/lib/ocf)")

    node = sub.add_parser("node", help="this node's own state")
    nsub = node.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    nsub.required = True
    nsub.add_parser("prune-records", help="before ganesha.nfsd starts (ExecStartPre): remove from its "
                    "NFSv4 recovery tree the client records of volumes not active on this node")

    lab = sub.add_parser("lab", help="a failover lab on this machine: two nodes, or up to nine "
                                     "(see README)")
    lab.add_argument("rest", nargs=argparse.REMAINDER)
    return p

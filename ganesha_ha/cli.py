"""`ganesha-ha`: the command line. Parses arguments and prints; all logic is in volume.py.

Exit codes (also in the README):
  0 success                    4 no such export
  1 unexpected error           5 conflict (duplicate directory, pseudo path, id, fsid)
  2 bad input or config        6 server unavailable or a program is missing
  3 volume not mounted / not initialised / not active on this node / registry unreadable
  7 the live server refused the change (registry rolled back)
  130 interrupted
`export apply` and `import` exit with the code of their first refusal (transfer.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from . import __version__
from .errors import GaneshaHAError, NotActiveError, ValidationError
from .formats import FORMATS
from .formats import where as _where
from .servers import BACKENDS, MODES, SERVERS, SHARED
from .textfmt import table


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
        e.add_argument("--fsal", metavar="NAME(key=value,...)", default="VFS" if adding else None,
                       help="Ganesha FSAL and its options" + (" (default VFS)" if adding else
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
    e.add_argument("--record-only", action="store_true")
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
                         "/etc/exports and /etc/exports.d/*.exports; ganesha: /etc/ganesha/ganesha.conf")
    im.add_argument("mountpoint")
    im.add_argument("--file", metavar="FILE|-", help="read this file (or stdin) instead")
    im.add_argument("--apply", action="store_true", help="write the registry (without it: print only)")
    im.add_argument("--skip-conflicts", action="store_true",
                    help="with --apply, take what can be taken and leave the refused exports out")
    im.add_argument("--force", action="store_true", help="take an Export_Id or fsid that a removed export had")
    im.add_argument("--resource-id", metavar="ID", help="cib: the new resource's id (default: from the group)")
    im.add_argument("--json", action="store_true")

    ia = sub.add_parser("install-agent", help="install the OCF agent as ocf:ganesha-ha:exports")
    ia.add_argument("--ocf-root", default="/usr/lib/ocf", help="OCF root (default /usr/lib/ocf)")

    lab = sub.add_parser("lab", help="a two-node failover lab on this machine (see README)")
    lab.add_argument("rest", nargs=argparse.REMAINDER)
    return p


# ---- output helpers -------------------------------------------------------------------------

def _export_json(exp, live: bool | None, mountpoint: str) -> dict[str, Any]:
    """The registry's form of the export (knfsd and ganesha parts nested, as in schema 2 and
    later, FSAL secrets redacted), with "directory" (for an FSAL with its own namespace that
    path, and "remote" true) and the clients as strings (formats/jsonform.py, what `export
    dump` writes), plus the flat keys of version 1 that scripts may read ("fsid", "fsal": the
    FSAL's name)."""
    from .formats.jsonform import export_object

    data = export_object(exp, mountpoint)
    data["fsid"] = exp.knfsd.fsid
    data["fsal"] = exp.ganesha.fsal.name
    data["live"] = live
    return data


def _failure_json(failure) -> dict[str, Any]:
    return {"directory": failure.export.path, "export_id": failure.export.export_id,
            "error": str(failure.error), "node_local": failure.node_local}


def _failures_code(failures) -> int:
    """Exports that could not go live (the others are): one stderr line each, and the exit
    code: 6 when something is missing on this node, else that of the first (7: a refusal)."""
    for f in failures:
        print(f"ganesha-ha: error: not live: {f}", file=sys.stderr)
    local = [f for f in failures if f.node_local]
    return (local or failures)[0].error.exit_code if failures else 0


LIST_HEADER = ["VOLUME", "SERVER", "ID", "PSEUDO/FSID", "DIRECTORY", "CLIENTS", "STATE"]


def _list_row(mountpoint: str, server: str, exp, live: bool | None, as_registered: bool | None = True) -> list[str]:
    """One row of `export list`: the volume and its server (Ganesha's with the export's FSAL,
    `ganesha/VFS`); the Export_Id; what names the export to its clients on that server
    (Ganesha: the NFSv4 pseudo path; knfsd: the fsid its file handles carry); the directory
    inside the volume (`NAME:/path` for an FSAL with its own namespace); the clients, after the
    export's access cap when it is not RW."""
    from .servers import backend_info

    ganesha_like = backend_info(server).pseudo_tree
    name = exp.pseudo if ganesha_like else exp.knfsd.fsid
    directory = _where(exp, mountpoint) if exp.remote else (exp.path or ".")
    clients = " ".join(str(c) for c in exp.clients)
    if exp.access != "RW":
        clients = f"[{exp.access}] {clients}"
    return [mountpoint, f"{server}/{exp.ganesha.fsal.name}" if ganesha_like else server, str(exp.export_id),
            name, directory, clients, _live_word(live, as_registered)]


def _list_table(rows: list[list[str]]) -> str:
    """The table, cut to the terminal's width (100 columns when not on one): CLIENTS first,
    then DIRECTORY, PSEUDO/FSID and VOLUME lose their ends ('…'); `--json` and `export show`
    have it all."""
    import shutil

    from .textfmt import fit

    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    return table(fit(rows, LIST_HEADER, width, shrink=[5, 4, 3, 0], minimum=12), LIST_HEADER)


def _live_word(live: bool | None, as_registered: bool | None = True) -> str:
    if live and as_registered is False:
        return "live, not as registered"
    return {True: "live", False: "not live", None: "unknown"}[live]


def _status_json(row, mountpoint: str) -> dict[str, Any]:
    """An export's JSON with what the server serves of it: `live`, and `as_registered` (false:
    live, but the server grants otherwise than the registry says; null when not live)."""
    return _export_json(row.export, row.live, mountpoint) | {"as_registered": row.as_registered}


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(text)


# ---- commands -----------------------------------------------------------------------------------

def _volume(args: argparse.Namespace, settings):
    from .volume import Volume

    return Volume(args.mountpoint, settings, ip=getattr(args, "ip", None))


def cmd_volume(args: argparse.Namespace, settings) -> int:
    vol = _volume(args, settings)
    if args.action == "init":
        times = {k: v for k in ("grace_period", "lease_lifetime") if (v := getattr(args, k)) is not None}
        state = vol.init(args.server, args.id_range, args.ganesha_mode, times)
        lo, hi = state.id_range
        _emit(args, {"mountpoint": str(vol.mountpoint), "server": state.server, "uuid": state.volume_uuid,
                     "export_id_range": [lo, hi], "ganesha_mode": state.ganesha_mode,
                     **({"instance": state.instance_settings()} if state.ganesha_mode != SHARED else {})},
              f"initialised {vol.mountpoint}: server {state.server}"
              + (", its own Ganesha instance" if state.ganesha_mode != SHARED else "")
              + f", Export_Ids {lo}-{hi}")
        return 0
    if args.action == "set-range":
        before, after = vol.set_range(args.id_range)
        lo, hi = after.id_range
        _emit(args, {"mountpoint": str(vol.mountpoint), "export_id_range": [lo, hi],
                     "previous_range": list(before.id_range), "ids_left": after.ids_left()},
              f"{vol.mountpoint}: Export_Ids {lo}-{hi} (was {before.id_range[0]}-{before.id_range[1]}), "
              f"{after.ids_left()} left")
        return 0
    if args.action == "start":
        res = vol.start()
        for warning in res.warnings:
            print(f"ganesha-ha: WARNING: {warning}", file=sys.stderr)
        _emit(args, {"applied": res.applied, "recovery_records": res.recovery_records, "grace": res.grace,
                     "failed": [_failure_json(f) for f in res.failed], "warnings": res.warnings},
              f"started {vol.mountpoint}: {res.applied} exports live, {res.recovery_records} client "
              f"records restored" + (f", grace: {res.grace}" if res.grace else ""))
        return _failures_code(res.failed)
    if args.action == "stop":
        n = vol.stop()
        _emit(args, {"withdrawn": n}, f"stopped {vol.mountpoint}: {n} exports withdrawn")
        return 0
    if args.action == "monitor":
        res = vol.monitor()
        for warning in res.drift.warnings:
            print(f"ganesha-ha: WARNING: {warning}", file=sys.stderr)
        data = {"running": res.running, "missing": [e.path for e in res.drift.missing],
                "changed": [e.path for e in res.drift.changed], "repaired": res.repaired,
                "reasons": res.drift.reasons, "warnings": res.drift.warnings,
                "recovery_saved": res.recovery_saved, "failed": [_failure_json(f) for f in res.failed]}
        if not res.running:  # a state of this node, not a refusal of the server (README: exit 3)
            if args.json:
                _emit(args, data, "")
            exc = NotActiveError(f"{vol.mountpoint} is not active on this node (its start marks it active)")
            print(f"ganesha-ha: error: {exc}", file=sys.stderr)
            return exc.exit_code
        _emit(args, data, f"{vol.mountpoint}: {res.repaired} repaired, recovery state "
                          f"{'saved' if res.recovery_saved else 'unchanged'}"
                          + "".join(f"\n  was not as registered: {r}" for r in res.drift.reasons))
        return _failures_code(res.failed)
    # status: what the server grants, read back as the monitor reads it; nothing is repaired
    status = vol.status()
    state, rows = status.state, status.exports
    active = vol.is_active()
    from . import idranges

    for warning in status.warnings:
        print(f"ganesha-ha: WARNING: {warning}", file=sys.stderr)
    data = {"mountpoint": str(vol.mountpoint), "server": state.server, "uuid": state.volume_uuid,
            "ganesha_mode": state.ganesha_mode,
            **({"instance": state.instance_settings()} if state.ganesha_mode != SHARED else {}),
            "export_id_range": list(state.id_range), "ids_left": state.ids_left(),
            "retired": {"export_ids": [list(r) for r in state.retired_ids],
                        "fsids": [list(r) for r in state.retired_fsids]},
            "active_here": active, "exports": [_status_json(row, str(vol.mountpoint)) for row in rows],
            "reasons": status.reasons, "stray": status.stray, "warnings": status.warnings,
            "unavailable": status.unavailable}
    live_n = sum(1 for row in rows if row.live)
    differ = sum(1 for row in rows if row.as_registered is False)
    retired = idranges.count_within(state.retired_ids, *state.id_range)
    served = (f"live state unknown ({status.unavailable})" if status.unavailable else f"{live_n} live"
              + (f" ({differ} not as registered: 'volume monitor' repairs them)" if differ else ""))
    _emit(args, data, f"{vol.mountpoint}: server {state.server}"
                      + (" (its own instance)" if state.ganesha_mode != SHARED else "")
                      + f", {len(rows)} exports, {served}"
                      + f", {'active' if active else 'not active'} on this node, Export_Ids "
                      f"{state.id_range[0]}-{state.id_range[1]}: {state.ids_left()} left"
                      + (f" ({retired} retired)" if retired else "")
                      + "".join(f"\n  not as registered: {r}" for r in status.reasons)
                      + "".join(f"\n  served from inside the volume, not in its registry: Export_Id {i}"
                                for i in status.stray))
    return 0


def cmd_export(args: argparse.Namespace, settings) -> int:
    from .volume import Volume

    if args.action in ("apply", "dump"):
        from . import transfer

        return transfer.cmd_apply(args, settings) if args.action == "apply" else transfer.cmd_dump(args, settings)
    if args.action == "list":
        from .neighbours import mounted_registries

        mountpoints = [args.mountpoint] if args.mountpoint else mounted_registries()
        out: list[dict[str, Any]] = []
        rows: list[list[str]] = []
        for mp in mountpoints:
            vol = Volume(mp, settings)
            status = vol.status()
            for row in status.exports:
                out.append(_status_json(row, str(vol.mountpoint)) | {"server": status.state.server})
                rows.append(_list_row(str(vol.mountpoint), status.state.server, row.export, row.live,
                                      row.as_registered))
        _emit(args, out, _list_table(rows) if rows else "no exports")
        return 0
    vol = _volume(args, settings)
    if args.action == "show":
        status = vol.status()
        state = status.state
        exp = state.find(vol.key(args.export, state))
        row = next(r for r in status.exports if r.export.path == exp.path)
        data = _status_json(row, str(vol.mountpoint)) | {"server": state.server}
        # the read-back's reasons name the export by its Export_Id (Ganesha) or directory (knfsd)
        mine = [r for r in status.reasons if r.startswith((f"Export_Id {exp.export_id} ",
                                                           f"{_where(exp, str(vol.mountpoint))}:"))]
        text = "\n".join(f"{k + ':':12} {v}" for k, v in (
            ("directory", _where(exp, str(vol.mountpoint))), ("export_id", exp.export_id), ("fsid", exp.knfsd.fsid),
            ("pseudo", exp.pseudo), ("clients", " ".join(data["clients"])), ("access", exp.access),
            ("squash", exp.squash), ("fsal", exp.ganesha.fsal), ("server", state.server),
            ("state", _live_word(row.live, row.as_registered)))) + "".join(f"\n  {r}" for r in mine)
        _emit(args, data, text)
        return 0
    if args.action in ("add", "update") and args.fsal is not None:
        from .fsal import parse_spec, read_value_file

        args.fsal = parse_spec(args.fsal, read_value_file)
    if args.action == "add":
        res = vol.add(args.directory, args.clients, pseudo=args.pseudo, export_id=args.export_id,
                      fsid=args.fsid, access=args.access, squash=args.squash, fsal=args.fsal,
                      force=args.force, record_only=args.record_only)
        verb = "added"
    elif args.action == "update":
        if not any(getattr(args, k) is not None for k in ("clients", "pseudo", "export_id", "fsid",
                                                           "access", "squash", "fsal")) \
                and not (args.add_clients or args.remove_clients):
            raise ValidationError("update", "nothing to change; give at least one option")
        if args.clients is not None and (args.add_clients or args.remove_clients):
            raise ValidationError("--client", "replaces the whole list; give it alone, or use only "
                                              "--add-client/--remove-client")
        res = vol.update(args.export, clients=args.clients, pseudo=args.pseudo, export_id=args.export_id,
                         fsid=args.fsid, access=args.access, squash=args.squash, fsal=args.fsal,
                         force=args.force, record_only=args.record_only, add_clients=args.add_clients,
                         remove_clients=args.remove_clients)
        verb = "updated"
    else:
        res = vol.remove(args.export, record_only=args.record_only)
        verb = "removed"
    e = res.export
    for warning in res.warnings:   # on stderr, whatever the output format: never lost in --json
        print(f"ganesha-ha: WARNING: {warning}", file=sys.stderr)
    data = _export_json(e, res.live, str(vol.mountpoint)) | {"action": verb, "note": res.note,
                                                             "warnings": res.warnings}
    done = "withdrawn" if verb == "removed" else "live"   # "removed ...: live" read as still served
    where = (done + (f"; {res.note}" if res.note else "")) if res.live else res.note
    _emit(args, data, f"{verb} {_where(e, str(vol.mountpoint))} (Export_Id {e.export_id}, pseudo {e.pseudo}, "
                      f"fsid {e.knfsd.fsid}, FSAL {e.ganesha.fsal}): {where}")
    return 0


def cmd_import(args: argparse.Namespace, settings) -> int:
    from . import transfer

    return transfer.cmd_import(args, settings)


def cmd_install_agent(args: argparse.Namespace, settings) -> int:
    from .install import install_agent

    path = install_agent(args.ocf_root)
    print(f"installed {path}/exports and {path}/notify (ocf:ganesha-ha:exports and ocf:ganesha-ha:notify), "
          f"running {sys.executable}")
    return 0


def lab_split(raw: list[str]) -> int | None:
    """Index of the `lab` command word, if that is the command: everything after it belongs
    to the lab's own parser (argparse.REMAINDER drops a leading --option such as --json)."""
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok == "--config":
            i += 2
            continue
        if tok.startswith("-"):
            i += 1
            continue
        return i if tok == "lab" else None
    return None


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush at exit does not raise
    BrokenPipeError again (Python's documentation, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if lab_split(raw) is not None:  # the lab is a layer above this CLI: ganesha_ha/__main__.py runs it
        print("ganesha-ha: error: the lab runs as 'ganesha-ha lab' (python -m ganesha_ha lab)", file=sys.stderr)
        return 2
    args = build_parser().parse_args(raw)
    try:
        from .settings import load_settings

        settings = load_settings(args.config)
        handler = {"volume": cmd_volume, "export": cmd_export, "install-agent": cmd_install_agent,
                   "import": cmd_import}[args.group]
        return handler(args, settings)
    except GaneshaHAError as exc:
        print(f"ganesha-ha: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ganesha-ha: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:   # the reader of our output went away (`export list | head -1`)
        _quiet_stdout()
        return 141            # what a shell reports for a program ended by SIGPIPE
    except Exception as exc:  # no traceback reaches a user; GANESHA_HA_DEBUG=1 shows it
        if os.environ.get("GANESHA_HA_DEBUG"):
            raise
        print(f"ganesha-ha: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
              "(set GANESHA_HA_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

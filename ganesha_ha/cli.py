"""`ganesha-ha`: the command line. Parses arguments (cli_args.py) and prints; all logic is in volume.py.

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

from .cli_args import build_parser
from .errors import GaneshaHAError, NotActiveError, ValidationError
from .formats import where as _where
from .servers import INSTANCE, SHARED
from .textfmt import table


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
    then DIRECTORY and PSEUDO/FSID lose their ends ('…'), VOLUME its start ('…/vol1': cut at
    the end, /srv/cluster/vol1 and vol2 both read '/srv/clust…'); `--json` and `export show`
    have it all."""
    import shutil

    from .textfmt import fit

    width = shutil.get_terminal_size((100, 24)).columns if sys.stdout.isatty() else 100
    return table(fit(rows, LIST_HEADER, width, shrink=[5, 4, 3, 0], minimum=12, keep_end=frozenset({0})),
                 LIST_HEADER)


def _live_word(live: bool | None, as_registered: bool | None = True) -> str:
    if live and as_registered is False:
        return "live, not as registered"
    return {True: "live", False: "not live", None: "unknown"}[live]


def _status_json(row, mountpoint: str) -> dict[str, Any]:
    """An export's JSON with what the server serves of it: `live`, and `as_registered` (false:
    live, but the server grants otherwise than the registry says; null when not live)."""
    return _export_json(row.export, row.live, mountpoint) | {"as_registered": row.as_registered}


def _status_here(vol):
    """vol.status(); for a volume with its own instance that is not active on this node, its
    exports not live here (the instance runs only where the volume is active: nothing to ask,
    nothing has died), where vol.status() says "live unknown" with why ("... not running
    (exited or killed) ..."), as for a server that cannot be asked."""
    from .record import replace

    status = vol.status()
    if status.unavailable and status.state.ganesha_mode != SHARED and not vol.is_active():
        return replace(status, exports=[replace(r, live=False, as_registered=None) for r in status.exports],
                       unavailable="")
    return status


def _emit(args: argparse.Namespace, data: Any, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(text)


# ---- commands -----------------------------------------------------------------------------------

def _volume(args: argparse.Namespace, settings):
    from .volume import Volume

    return Volume(args.mountpoint, settings, ip=getattr(args, "ip", None))


def _check_grace_covers_lease(times: dict[str, int], settings) -> None:
    """ValidationError when an instance's Grace_Period (seconds; `times`, else the node's
    [instance] setting) would be shorter than its Lease_Lifetime. A client renews about once
    a lease, so it may first reach the new instance after a move when a shorter grace is
    over, and then its reclaims are refused (NFS4ERR_NO_GRACE): it loses its opens and locks.
    RFC 8881 section 8.4.2.1 (and Linux knfsd, fs/nfsd/nfs4state.c) keep grace >= lease."""
    given = {k: (times[k], "") if k in times else (int(settings.instance[k]), f"the node's [instance] {k}")
             for k in ("grace_period", "lease_lifetime")}
    (grace, gsrc), (lease, lsrc) = given["grace_period"], given["lease_lifetime"]
    if grace < lease:
        raise ValidationError("grace_period", f"{grace} s{f' ({gsrc})' if gsrc else ''} is shorter than the lease "
                                              f"({lease} s{f', {lsrc}' if lsrc else ''}): a "
                                              "client that renews once a lease may come back after the grace "
                                              "ended and lose its opens and locks; give --grace-period "
                                              f"{lease} or more, or a shorter --lease-lifetime")


def _set_times(args: argparse.Namespace, vol, settings) -> int:
    """`volume set-times`: the volume's own times for its instance, merged with those it has,
    checked as at `volume init` (grace >= lease), taken at the instance's next start."""
    times = {k: v for k in ("grace_period", "lease_lifetime") if (v := getattr(args, k)) is not None}
    if not times:
        raise ValidationError("grace_period", "give --grace-period, --lease-lifetime or both")
    state = vol.load()
    if state.ganesha_mode == SHARED:
        raise ValidationError("grace_period", "is a setting of a volume with its own Ganesha instance "
                                              "(--ganesha-mode instance); a shared server has its own")
    _check_grace_covers_lease(state.instance_settings() | times, settings)
    before, after = vol.set_times(times)
    _emit(args, {"mountpoint": str(vol.mountpoint), "instance": after.instance_settings(),
                 "previous": before.instance_settings()},
          f"{vol.mountpoint}: " + ", ".join(f"{k} {v} s" for k, v in after.instance_settings().items())
          + " (the volume's own; the running instance keeps its times until its next start)")
    return 0


def cmd_volume(args: argparse.Namespace, settings) -> int:
    vol = _volume(args, settings)
    if args.action == "init":
        times = {k: v for k in ("grace_period", "lease_lifetime") if (v := getattr(args, k)) is not None}
        if args.ganesha_mode == INSTANCE:
            _check_grace_covers_lease(times, settings)
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
    if args.action == "set-times":
        return _set_times(args, vol, settings)
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
    status = _status_here(vol)
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
            "reasons": status.reasons, "not_live": status.not_live, "stray": status.stray,
            "warnings": status.warnings,
            "unavailable": status.unavailable}
    live_n = sum(1 for row in rows if row.live)
    differ = sum(1 for row in rows if row.as_registered is False)
    retired = idranges.count_within(state.retired_ids, *state.id_range)
    if state.ganesha_mode != SHARED and not active and not live_n:
        served = "not served here (its instance runs where the volume is active)"
    else:
        served = (f"live state unknown ({status.unavailable})" if status.unavailable else f"{live_n} live"
                  + (f" ({differ} not as registered: 'volume monitor' repairs them)" if differ else ""))
    _emit(args, data, f"{vol.mountpoint}: server {state.server}"
                      + (" (its own instance)" if state.ganesha_mode != SHARED else "")
                      + f", {len(rows)} exports, {served}"
                      + f", {'active' if active else 'not active'} on this node, Export_Ids "
                      f"{state.id_range[0]}-{state.id_range[1]}: {state.ids_left()} left"
                      + (f" ({retired} retired)" if retired else "")
                      + "".join(f"\n  not live: {r}" for r in status.not_live)
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
        code = 0
        for mp in mountpoints:
            vol = Volume(mp, settings)
            try:
                status = _status_here(vol)
            except GaneshaHAError as exc:
                if args.mountpoint:
                    raise
                # one unreadable registry hid every other volume's exports (exit 3, nothing listed):
                # the others are listed, this one is named, and the exit code says one was not
                print(f"ganesha-ha: error: {_naming_volume(str(exc), argparse.Namespace(mountpoint=mp))}",
                      file=sys.stderr)
                code = code or exc.exit_code
                continue
            for row in status.exports:
                out.append(_status_json(row, str(vol.mountpoint)) | {"server": status.state.server})
                rows.append(_list_row(str(vol.mountpoint), status.state.server, row.export, row.live,
                                      row.as_registered))
        _emit(args, out, _list_table(rows) if rows else "no exports")
        return code
    vol = _volume(args, settings)
    if args.action == "show":
        status = _status_here(vol)
        state = status.state
        exp = state.find(vol.key(args.export, state))
        row = next(r for r in status.exports if r.export.path == exp.path)
        data = _status_json(row, str(vol.mountpoint)) | {"server": state.server}
        # the read-back's reasons name the export by its Export_Id (Ganesha) or directory (knfsd)
        mine = [r for r in status.reasons if r.startswith((f"Export_Id {exp.export_id} ",
                                                           f"{_where(exp, str(vol.mountpoint))}:"))]
        text = "\n".join(f"{k + ':':12} {v}" for k, v in (
            ("directory", _where(exp, str(vol.mountpoint))),
            ("export_id", _kept(exp.export_id, "Export_Id", state.server)),
            ("fsid", _kept(exp.knfsd.fsid, "fsid", state.server)),
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
    _emit(args, data, f"{verb} {_where(e, str(vol.mountpoint))} ({_identity(e, res.server)}): {where}")
    return 0


def _kept(value: object, label: str, server: str) -> str:
    """An identity as `export show` gives it: marked when the volume's server does not use it."""
    from .servers import unused_identity

    return f"{value} (not used by {server}: kept for a move of the exports)" if unused_identity(server, label) \
        else str(value)


def _identity(exp, server: str) -> str:
    """What names an export to its clients on the volume's server, for the line of a change:
    the identity its file handles carry, and on Ganesha its pseudo path and FSAL (the other
    server's identity is in the registry, `export show`, not here: servers.unused_identity)."""
    from .servers import backend_info

    info = backend_info(server)
    parts = [f"fsid {exp.knfsd.fsid}" if info.handle_id == "fsid" else f"Export_Id {exp.export_id}"]
    if info.pseudo_tree:
        parts.append(f"pseudo {exp.pseudo}")
    if info.fsals:
        parts.append(f"FSAL {exp.ganesha.fsal}")
    return ", ".join(parts)


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


def cmd_node(args: argparse.Namespace, settings) -> int:
    """`node prune-records`: recovery/ganesha_records.py GaneshaRecordStore.prune_inactive."""
    from pathlib import Path

    from .nodestate import active_records
    from .recovery.ganesha_records import GaneshaRecordStore

    g = settings.ganesha
    store = GaneshaRecordStore(Path(g["recovery_root"]), g["recovery_dir"])
    active = {str(r.get("volume_uuid")) for r in active_records(Path(settings.node["runtime_dir"]))}
    removed = store.prune_inactive(active)
    print(f"removed {len(removed)} client record(s) of volumes not active here"
          + (f": {', '.join(removed)}" if removed else ""))
    return 0


def _naming_volume(message: str, args: argparse.Namespace) -> str:
    """`message` led by the volume the command was given when it does not name it ("no export
    'x' in this volume's registry"): a script's run over several volumes logs lines that must
    say which one each is about."""
    mountpoint = getattr(args, "mountpoint", None)
    if not mountpoint:
        return message
    named = {str(mountpoint).rstrip("/") or "/", os.path.realpath(mountpoint)}
    return message if any(n in message for n in named) else f"{mountpoint}: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if lab_split(raw) is not None:  # the lab is a layer above this CLI: ganesha_ha/__main__.py runs it
        print("ganesha-ha: error: the lab runs as 'ganesha-ha lab' (python -m ganesha_ha lab)", file=sys.stderr)
        return 2
    args = build_parser().parse_args(raw)
    from .settings import load_settings

    try:
        settings = load_settings(args.config)
    except GaneshaHAError as exc:   # the settings file's error names the file, not the volume given
        print(f"ganesha-ha: error: {exc}", file=sys.stderr)
        return exc.exit_code
    try:
        handler = {"volume": cmd_volume, "export": cmd_export, "install-agent": cmd_install_agent,
                   "import": cmd_import, "node": cmd_node}[args.group]
        return handler(args, settings)
    except GaneshaHAError as exc:
        print(f"ganesha-ha: error: {_naming_volume(str(exc), args)}", file=sys.stderr)
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

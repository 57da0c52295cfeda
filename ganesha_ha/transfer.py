"""`export apply`, `export dump` and `import`: exports into and out of a volume's registry.

Reads a description (a file, stdin, `cibadmin --query`, /etc/exports, Ganesha's config),
turns it into descriptions with formats/, brings the volume to them with Volume.converge
(one transaction), and prints what changes, what is refused and why and, for a CIB, the pcs
and crmsh commands that replace the exportfs primitives. The parsing, the planning and the
commands are pure (formats/, converge.py); this module reads the sources and prints.

Exit codes (README): 0 when everything described was taken; otherwise the code of the first
refusal (2 bad input, 4, 5 conflict, ...), and nothing is written (with --skip-conflicts the
rest is, and the code still says that something was left out: also an export the live server
refused, 7, or that misses an FSAL module here, 6, when the volume is active on this node;
Volume.converge). A dry run exits the same way, so that a script can ask first.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .converge import ADD, REMOVE, UPDATE, Change, Outcome, field_texts
from .description import Description, Refusal
from .errors import GaneshaHAError, NotInstalledError, ServerUnavailableError, ValidationError
from .formats import Reading, detect
from .formats import where as formats_where
from .textfmt import Progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from .backends.ganesha_conf import RenderOptions
    from .export_edits import ConvergeResult
    from .formats.cib import Cib, Primitive, Replacement
    from .model import Export
    from .settings import Settings
    from .volume import Volume

CIBADMIN_TIMEOUT = 60.0
_MARK = {ADD: "+", UPDATE: "~", REMOVE: "-"}


# ---- sources ---------------------------------------------------------------------------------

def read_source(name: str) -> bytes:
    """A file's bytes, or stdin's for '-' (ValidationError when it cannot be read)."""
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ValidationError("input", f"cannot read {name}: {exc.strerror}") from None


def text_of(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("input", f"{name} is not UTF-8 ({exc})") from None


def query_cib() -> str:
    """The live CIB, from `cibadmin --query` (NotInstalledError without Pacemaker's tools,
    ServerUnavailableError when the cluster does not answer)."""
    try:
        cp = subprocess.run(["cibadmin", "--query"], capture_output=True, text=True, timeout=CIBADMIN_TIMEOUT)
    except FileNotFoundError:
        raise NotInstalledError("cibadmin (pacemaker-cli-utils) is not installed; give the CIB with --file") from None
    except subprocess.TimeoutExpired:
        raise ServerUnavailableError(f"cibadmin --query did not answer in {CIBADMIN_TIMEOUT:g} s") from None
    if cp.returncode != 0:
        reason = " ".join(cp.stderr.split()) or f"exit {cp.returncode}"
        raise ServerUnavailableError(f"cibadmin --query failed: {reason}")
    return cp.stdout


def _exports_sources(file: str | None, settings: Settings) -> list[tuple[str, bytes]]:
    """What exportfs -a reads: the node's exports(5) files (`[knfsd] exports_file`, default
    /etc/exports, and `exports_dir`/*.exports), or the one file."""
    if file is not None:
        return [(file if file != "-" else "stdin", read_source(file))]
    from .backends.node_exports import read_exports_files

    main = settings.knfsd["exports_file"]
    out, problems = read_exports_files(main, settings.knfsd["exports_dir"])
    if problems:
        raise ValidationError("input", f"cannot read {problems[0]}")
    if not out:
        raise ValidationError("input", f"{main} does not exist; give the file with --file")
    return out


def _ganesha_text(file: str) -> str:
    """A Ganesha config with its %include files (relative to the including file's directory)."""
    from .formats.ganesha_blocks import expand_includes

    text = text_of(read_source(file), file)
    base = Path(file).parent if file != "-" else Path.cwd()

    def include(path: str) -> str:
        target = base / path if not os.path.isabs(path) else Path(path)
        return text_of(read_source(str(target)), str(target))

    return expand_includes(text, include)


def _render_options(settings: Settings) -> RenderOptions:
    from .backends.ganesha_conf import RenderOptions

    return RenderOptions(protocols=settings.ganesha["protocols"], transports=settings.ganesha["transports"])


def read_description(data: bytes, fmt: str, vol: Volume, settings: Settings, name: str) -> tuple[Reading, bool]:
    """`export apply -i`: the descriptions in `data` (`fmt` or detected), and whether they
    describe the whole volume (a JSON list, an exports file, EXPORT blocks: yes; one JSON
    object: no). Every directory must lie in the volume."""
    text = data.decode("utf-8", "surrogateescape")
    fmt = fmt or detect(text)
    if fmt == "json":
        from .formats import jsonform

        return jsonform.read(text_of(data, name), vol.registry.relpath)
    if fmt == "exports":
        from .formats import exports5

        return exports5.read(data, vol.registry.relpath), True
    from .formats import ganesha_blocks

    return ganesha_blocks.read(text_of(data, name), vol.registry.relpath, _render_options(settings)), True


# ---- commands ----------------------------------------------------------------------------------

def cmd_dump(args: argparse.Namespace, settings: Settings) -> int:
    from .volume import Volume

    vol = Volume(args.mountpoint, settings)
    state = vol.load()
    mp = str(vol.mountpoint)
    header = (f"ganesha-ha export dump of {mp} (server {state.server}, {len(state.exports)} exports); "
              "'ganesha-ha export apply' takes it back")
    if args.format == "json":
        from .formats import jsonform

        sys.stdout.write(jsonform.render(state.exports, mp))
    elif args.format == "exports":
        from .formats import exports5

        sys.stdout.write(exports5.render(state.exports, mp, header))
    else:
        from .formats import ganesha_blocks

        sys.stdout.write(ganesha_blocks.render(state.exports, mp, _render_options(settings), header))
    return 0


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    from .volume import Volume

    vol = Volume(args.mountpoint, settings)
    data = read_source(args.input)
    reading, whole = read_description(data, args.format, vol, settings, args.input)
    progress = Progress()
    try:
        result = vol.converge(reading.descriptions, remove_missing=whole, force=args.force,
                              check=args.check or bool(reading.refusals), record_only=args.record_only,
                              progress=progress)
    finally:
        progress.close()
    return _report(args, vol, reading, result, dry=args.check)


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from .formats import exports5
    from .volume import Volume

    vol = Volume(args.mountpoint, settings)
    state = vol.load()   # not initialised: say so before reading anything
    relpath = exports5.relpath_in(os.path.realpath(vol.mountpoint), os.path.realpath)
    cib = prims = None
    if args.source == "cib":
        from .formats import cib as cibform

        cib = cibform.parse(text_of(read_source(args.file), args.file) if args.file else query_cib())
        imp = cibform.read(cib, relpath)
        reading, prims = imp.reading, imp.primitives
        if state.server != "knfsd" and reading.descriptions:
            reading.notes.append(f"the volume's server is {state.server}: its clients get new file handles "
                                 "(an fsid is knfsd's identity only)")
    elif args.source == "exports":
        reading = exports5.read(_exports_sources(args.file, settings), relpath)
    else:
        from .formats import ganesha_blocks

        # the node's Ganesha config by default: the file the agent reads as this node's (its scope, backend)
        source = args.file or str(settings.ganesha["ganesha_config"])
        reading = ganesha_blocks.read(_ganesha_text(source), relpath,
                                      _render_options(settings), remote=False)   # only what lies in the volume
    skip = args.skip_conflicts
    progress = Progress()
    try:
        result = vol.converge(reading.descriptions, remove_missing=False, update_existing=False, force=args.force,
                              check=not args.apply or (bool(reading.refusals) and not skip),
                              skip_conflicts=skip, progress=progress)
    finally:
        progress.close()
    refused_at = {r.where for r in result.outcome.conflicts}
    taken = sorted(d.export_id for d in reading.descriptions if d.where not in refused_at and d.export_id)
    # into a volume active here, the blocks or lines now serve it twice: the note says "now" (tryout6 F)
    when = "now (the volume is active on this node)" if vol.is_active() else "before the volume's first start"
    if args.source == "ganesha" and taken:
        reading.notes.append(f"remove the EXPORT blocks of {_block_files(source, taken)} on every node (or "
                             f"RemoveExport them) {when}: the node's Ganesha serves them "
                             "again at its next restart, on a node where the volume may not be mounted")
    if args.source == "exports":
        reading.notes += _exports_lines_note([d for d in reading.descriptions if d.where not in refused_at],
                                             reading.lines, when)
    kept = {e.path for e in result.outcome.unchanged}   # imported before: their fsid is pinned already
    for d in reading.descriptions if args.source == "exports" else ():
        if (d.fsid is None and state.server == "knfsd" and d.clients is not None and d.where not in refused_at
                and d.path not in kept):
            reading.notes.append(f"{d.where}: no fsid: knfsd derives the file handles from the file system now; "
                                 "a new fsid is pinned, so its clients must mount it again after the switch "
                                 "(or give it fsid= in the source before importing)")
    replacement = None
    refused = reading.refusals + result.outcome.conflicts
    if cib is not None and prims:
        replacement = _replacement(cib, prims, vol, state.server, args.resource_id, refused, reading)
    return _report(args, vol, reading, result, dry=not args.apply, replacement=replacement)


def _block_files(source: str, ids: list[int]) -> str:
    """`Export_Id 11, 12 from /etc/ganesha/ganesha.conf; Export_Id 13 from /etc/ganesha/more.conf`:
    each block named with the file that holds it, an %included one too (the note named `source`
    for every block, tryout5 E), as ganesha_node reads the includes (Ganesha's rule)."""
    from .backends.ganesha_node import load_node_config

    conf = load_node_config(source)[0] if source != "-" else None
    found = {e.export_id: e.source for e in (conf.exports if conf else ()) if e.export_id is not None}
    by_file: dict[str, list[int]] = {}
    for i in ids:
        by_file.setdefault(found.get(i, source), []).append(i)
    return "; ".join(f"Export_Id {', '.join(map(str, group))} from {file}" for file, group in by_file.items())


def _exports_lines_note(taken: list[Description], lines: dict[str, list[str]], when: str) -> list[str]:
    """The note that the imported lines must leave the exports file(s): exportfs reads them again
    at nfs-server's start and at any `exportfs -r`/`-a` (also an administrator's, without -i),
    replacing ganesha-ha's etab lines with theirs (measured: `exportfs -ra` with an imported line
    left in /etc/exports dropped the fsid ganesha-ha had pinned, new file handles until the next
    monitor), and exports them on a node where the volume may not be mounted. `when`: by
    when to remove them (before the first start; now, into a volume active here)."""
    by_file: dict[str, list[str]] = {}
    for d in taken:
        for place in lines.get(d.where, []):
            file, _, number = place.rpartition(" line ")
            numbers = by_file.setdefault(file or "the file", [])
            if number not in numbers:       # one per line, not per client of it
                numbers.append(number)
    if not by_file:
        return []
    shown = "; ".join(f"{file} line{'s' if len(ns) > 1 else ''} {', '.join(sorted(ns, key=int))}"
                      for file, ns in by_file.items())
    return [f"remove the imported lines from the exports file(s) on every node {when} "
            f"({shown}): nfs-server's start and any 'exportfs -r' or 'exportfs -a' export them again outside "
            "ganesha-ha, over its etab lines (a pinned fsid lost: new file handles), also where the volume "
            "is not mounted"]


def _replacement(cib: Cib, prims: list[Primitive], vol: Volume, server: str, resource_id: str | None,
                 refused: list[Refusal], reading: Reading) -> Replacement | None:
    """The commands that replace the volume's primitives, or None with a note saying why not
    (a refusal: a primitive whose exports stay out must stay too)."""
    from .formats import cib as cibform

    if refused:
        reading.notes.append(f"no pcs/crmsh commands: {len(refused)} refusal(s) above; a primitive whose exports "
                             "are not imported must stay")
        return None
    try:
        return cibform.replacement(cib, prims, volume=str(vol.mountpoint), server=server, resource_id=resource_id)
    except GaneshaHAError as exc:
        reading.notes.append(f"no pcs/crmsh commands: {exc}")
        return None


# ---- output ---------------------------------------------------------------------------------------

def _report(args: argparse.Namespace, vol: Volume, reading: Reading, result: ConvergeResult, *, dry: bool,
            replacement: Replacement | None = None) -> int:
    outcome: Outcome = result.outcome
    refused = reading.refusals + outcome.conflicts
    # --skip-conflicts writes the rest but still exits non-zero: a script must see what was left out
    code = refused[0].error.exit_code if refused else 0
    if getattr(args, "json", False):
        print(json.dumps(_json(vol, reading, result, refused, dry, replacement), indent=2, sort_keys=True,
                         ensure_ascii=False))
    else:
        _print_text(vol, reading, outcome, refused, dry, result, replacement)
    if code:
        print(f"ganesha-ha: error: {len(refused)} export(s) refused; "
              f"{'nothing was changed' if not result.changed else 'the others were changed'}", file=sys.stderr)
    return code


def _print_text(vol: Volume, reading: Reading, outcome: Outcome, refused: list[Refusal], dry: bool,
                result: ConvergeResult, replacement: Replacement | None) -> None:
    # a dry run draws a random fsid for an export its source gives none: another one is drawn when
    # it is applied, so printing it would give the administrator a value the volume never has
    drawn = {d.path for d in reading.descriptions if d.fsid is None} if dry or not result.changed else set()
    for ch in outcome.changes:
        where = formats_where(ch.export, str(vol.mountpoint))
        if ch.action == UPDATE:
            for name, old, new in ch.differences():
                print(f"~ {where}: {name}: {old or '(none)'} -> {new or '(none)'}")
        else:
            exp = ch.export
            f = field_texts(exp)
            fsid = "a new one (drawn when applied)" if ch.action == ADD and exp.path in drawn else f["fsid"]
            print(f"{_MARK[ch.action]} {where}: Export_Id {f['export_id']}, fsid {fsid}, pseudo {f['pseudo']}, "
                  f"clients {f['clients']}" + (f", access {exp.access}" if exp.access != "RW" else ""))
    for ref in refused:
        print(f"! {ref}")
    for note in reading.notes:
        print(f"note: {note}")
    for warning in result.warnings:
        print(f"ganesha-ha: WARNING: {warning}", file=sys.stderr)
    counts = {a: sum(1 for c in outcome.changes if c.action == a) for a in (ADD, UPDATE, REMOVE)}
    summary = (f"{counts[ADD]} to add, {counts[UPDATE]} to update, {counts[REMOVE]} to remove, "
               f"{len(outcome.unchanged)} unchanged, {len(refused)} refused"
               + (f", {reading.outside} outside {vol.mountpoint}" if reading.outside else ""))
    if dry:
        tail = "dry run: nothing was changed"
    elif not result.changed:
        tail = "nothing was changed"
    else:
        tail = "applied live" if result.live else "recorded (the volume is not active on this node: applied at its next start)"
    print(f"{summary}; {tail}")
    if replacement is not None:
        added = f", and add {replacement.notify_id}" if replacement.notify_id else ""
        print(f"\nThen replace the exportfs primitives by one resource, {replacement.resource_id}{added} (once, on "
              "one node, after the import is applied; the exports stay live: the cluster is in maintenance mode "
              "meanwhile):")
        for tool, cmds in (("pcs", replacement.pcs), ("crmsh", replacement.crmsh)):
            print(f"  with {tool}:")
            for c in cmds:
                print(f"    {c}")
        for note in replacement.notes:
            print(f"note: {note}")


def _json(vol: Volume, reading: Reading, result: ConvergeResult, refused: list[Refusal], dry: bool,
          replacement: Replacement | None) -> dict[str, Any]:
    from .formats.jsonform import export_object

    def obj(exp: Export | None) -> dict[str, Any] | None:
        return export_object(exp, str(vol.mountpoint)) if exp is not None else None

    def change(ch: Change) -> dict[str, Any]:
        return {"action": ch.action, "directory": formats_where(ch.export, str(vol.mountpoint)), "source": ch.source,
                "before": obj(ch.before), "after": obj(ch.after),
                "differences": [list(d) for d in ch.differences()]}

    data: dict[str, Any] = {
        "mountpoint": str(vol.mountpoint), "dry_run": dry, "changed": result.changed, "live": result.live,
        "changes": [change(c) for c in result.outcome.changes], "unchanged": len(result.outcome.unchanged),
        "refused": [{"where": r.where, "error": str(r.error), "exit_code": r.error.exit_code,
                     "live": r.live} for r in refused],
        "outside": reading.outside, "notes": reading.notes, "warnings": result.warnings,
    }
    if replacement is not None:
        data["replacement"] = {
            "resource_id": replacement.resource_id, "notify_id": replacement.notify_id, "group": replacement.group,
            "notes": replacement.notes,
            **{tool: [{"argv": list(c.argv), "kind": c.kind, "line": str(c)} for c in cmds]
               for tool, cmds in (("pcs", replacement.pcs), ("crmsh", replacement.crmsh))}}
    return data

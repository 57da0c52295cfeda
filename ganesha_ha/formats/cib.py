"""`ocf:heartbeat:exportfs` primitives of a Pacemaker CIB (pure): the exports they make, and
the pcs and crmsh commands that replace them by one `ocf:ganesha-ha:exports` resource.

What the upstream agent (resource-agents heartbeat/exportfs) does with its parameters, and
so what an import must keep for clients to keep their file handles:

- `directory`: one or more directories separated by blanks; each is stripped of trailing
  `/` and resolved with `readlink -f` (the caller's `relpath` resolves);
- `fsid`: the fsid of the first directory; with several directories, an integer, and the
  k-th directory gets fsid + k. It replaces any `fsid=` in `options`;
- `clientspec`: one client, IPv6 in brackets (`[fd00::]/64`, what exportfs's `CLIENT:DIR`
  argument needs; etab has it without them);
- `options`: passed to `exportfs -o` as they are; exportfs's defaults fill in the rest
  (read-only without `rw`, root_squash, sync, no_subtree_check...);
- `unlock_on_stop` (default 1), `wait_for_leasetime_on_stop` (default 0): what its stop does
  besides withdrawing; the exports resource takes both (a volume's primitives that differ in
  them get the safer value, and a note).
These are the rules of the exports agent's classic mode too: classic.py's functions read them.

So each primitive is one client of each of its directories, and every primitive naming one
directory becomes one client of one export, with the fsid they must share (knfsd keeps an
fsid per client line, the registry one per export: differing fsids are refused, as is a
primitive with directories inside and outside the volume, a cloned or disabled one, or one
whose parameters come from rules).

The replacement keeps every export live: with the cluster in maintenance mode (Pacemaker
neither starts nor stops anything), the new resource is created where the first old
primitive is in its group, the old primitives are deleted (`--force`: without stopping
them, so their exports stay), their history is cleared with `crm_resource --refresh` (else
Pacemaker stops the orphans, withdrawing the exports, when maintenance ends; `--cleanup`
clears only failures, measured: tests/cluster/test_import_cutover.py) and maintenance ends:
Pacemaker then starts the new resource, whose start applies exactly the lines etab already has.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
import xml.etree.ElementTree as ET

from ..classic import directory_fsids, split_directories, split_options, unbracket
from ..description import Description, Refusal
from ..errors import ConflictError, GaneshaHAError, ValidationError
from ..clientspec import ACCESS_OPTIONS, ClientSpec
from ..ocf import ACTIONS, AGENT_NAME, NOTIFY_ACTIONS, NOTIFY_AGENT_NAME, PROVIDER
from ..record import Factory, Record
from . import Reading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

AGENT = f"ocf:{PROVIDER}:{AGENT_NAME}"
NOTIFY_AGENT = f"ocf:{PROVIDER}:{NOTIFY_AGENT_NAME}"
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_SAFE_VALUE_RE = re.compile(r"/[A-Za-z0-9._/+-]*")   # a value that is one word for both shells
_STOP_PARAMS = {"unlock_on_stop": "1", "wait_for_leasetime_on_stop": "0"}   # the agents' defaults
_IP_AGENTS = {("ocf", "heartbeat", "IPaddr2"), ("ocf", "heartbeat", "IPaddr")}
_NOTIFY_KIND = ("ocf", PROVIDER, NOTIFY_AGENT_NAME)
_EXPORTS_KIND = ("ocf", PROVIDER, AGENT_NAME)
_NFSNOTIFY_KIND = ("ocf", "heartbeat", "nfsnotify")


class Primitive(Record, frozen=True):
    """One exportfs primitive as the CIB configures it."""

    id: str
    directory: str                 # as the CIB gives it: one or more, separated by blanks
    clientspec: str
    options: str
    fsid: str
    group: str | None = None
    params: tuple[tuple[str, str], ...] = ()   # its other parameters (unlock_on_stop, ...)

    def param(self, name: str, default: str = "") -> str:
        return dict(self.params).get(name, default)


class Cib(Record):
    """What of a CIB the import needs: the exportfs primitives (and those it cannot read),
    every id in use, groups and their members, IP addresses of IPaddr2 primitives by group,
    the agent of every primitive (class, provider, type), constraints by the resources they
    name, and whether maintenance mode is on."""

    primitives: list[Primitive] = Factory(list)
    unreadable: list[Refusal] = Factory(list)
    ids: set[str] = Factory(set)
    groups: dict[str, list[str]] = Factory(dict)
    ips: dict[str, list[str]] = Factory(dict)
    kinds: dict[str, tuple[str | None, ...]] = Factory(dict)
    constraints: dict[str, list[str]] = Factory(dict)
    maintenance: bool = False
    # the parameters of every ocf:ganesha-ha:exports primitive, by id (those with a rule left out)
    ours: dict[str, dict[str, str]] = Factory(dict)


def parse(xml: str) -> Cib:
    """The exportfs primitives of a CIB (`cibadmin -Q` output, or a `<configuration>` or
    `<resources>` element). ValidationError when it is not XML."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValidationError("cib", f"not XML: {exc}") from None
    cib = Cib()
    index = {el.get("id"): el for el in root.iter() if el.get("id")}
    cib.ids = set(index)
    cib.maintenance = any(nv.get("name") == "maintenance-mode" and nv.get("value", "").lower() in ("true", "1", "yes", "on")
                          for cps in root.iter("cluster_property_set") for nv in cps.iter("nvpair"))
    parents = {child: parent for parent in root.iter() for child in parent}
    for group in root.iter("group"):
        cib.groups[group.get("id", "")] = [p.get("id", "") for p in group if p.tag == "primitive"]
    for cons in root.iter():
        if cons.tag.startswith("rsc_"):
            named = {cons.get(a) for a in ("rsc", "with-rsc", "first", "then")} | {
                ref.get("id") for ref in cons.iter("resource_ref")}
            for rid in named - {None}:
                cib.constraints.setdefault(rid, []).append(cons.get("id", "?"))
    for prim in root.iter("primitive"):
        kind = _agent(prim, index)
        cib.kinds[prim.get("id", "")] = kind
        parent = parents.get(prim)
        group = parent.get("id") if parent is not None and parent.tag == "group" else None
        if kind in _IP_AGENTS and group is not None:
            ip = _params(prim, index).get("ip")
            if ip:
                cib.ips.setdefault(group, []).append(ip)
        pid = prim.get("id", "?")
        if kind == _EXPORTS_KIND:
            try:
                cib.ours[pid] = _params(prim, index)
            except GaneshaHAError:
                pass
        if kind != ("ocf", "heartbeat", "exportfs"):
            continue
        try:
            if parent is not None and parent.tag in ("clone", "master", "bundle"):
                raise ValidationError("cib", f"is inside the {parent.tag} {parent.get('id')}: it runs on several "
                                             "nodes, not with one volume")
            meta = _params(prim, index, "meta_attributes")
            if meta.get("target-role", "").lower() == "stopped":
                raise ValidationError("cib", "is disabled (target-role=Stopped): its exports are not served now; "
                                             "enable or delete it first")
            params = _params(prim, index)
            missing = [k for k in ("directory", "clientspec", "fsid") if not params.get(k)]
            if missing:
                raise ValidationError("cib", f"has no {', '.join(missing)}")
            others = tuple(sorted((k, v) for k, v in params.items()
                                  if k not in ("directory", "clientspec", "fsid", "options")))
            cib.primitives.append(Primitive(pid, params["directory"], params["clientspec"].strip(),
                                            params.get("options", "").strip(), params["fsid"].strip(), group, others))
        except GaneshaHAError as exc:
            cib.unreadable.append(Refusal(f"primitive {pid}", exc))
    return cib


def _agent(prim: ET.Element, index: dict[str | None, ET.Element]) -> tuple[str | None, ...]:
    src = index.get(prim.get("template")) if prim.get("template") else prim
    src = src if src is not None else prim
    return (src.get("class"), src.get("provider"), src.get("type"))


def _params(prim: ET.Element, index: dict[str | None, ET.Element], tag: str = "instance_attributes") -> dict[str, str]:
    """The name=value pairs of `prim`'s `tag` sets (after its template's), id-refs followed,
    as Pacemaker resolves a name given by several sets: the set with the highest `score`
    wins, and of sets with equal scores the later one (the primitive's over its template's).
    Measured with Pacemaker 2.1.5's `crm_resource -g` on CIB files: an unscored set after a
    `score="10"` one loses to it, two unscored sets give the later one's value.
    ValidationError when a set has a rule (its value would depend on node or time)."""
    out: dict[str, str] = {}
    sources = []
    template = index.get(prim.get("template")) if prim.get("template") else None
    if template is not None:
        sources.append(template)
    sources.append(prim)
    sets = []
    for src in sources:
        for ref in src.findall(tag):
            attrs = index.get(ref.get("id-ref"), ref) if ref.get("id-ref") else ref
            if attrs.find("rule") is not None:
                raise ValidationError("cib", f"its {tag} {attrs.get('id')} have a rule: the values depend on the node "
                                             "or the time, and an import needs one value")
            sets.append((_score(ref.get("score") or attrs.get("score")), len(sets), attrs))
    for _, _, attrs in sorted(sets, key=lambda s: (s[0], s[1])):   # later (higher) overwrites
        for nv in attrs.findall("nvpair"):
            if nv.get("id-ref"):
                nv = index.get(nv.get("id-ref"), nv)
            if nv.get("name") is not None:
                out[nv.get("name", "")] = nv.get("value", "")
    return out


_INFINITY = 1000000   # Pacemaker's CRM_SCORE_INFINITY


def _score(text: str | None) -> int:
    """A set's `score` as Pacemaker reads it (char2score): INFINITY and its signs, else an
    integer clipped to +-INFINITY; absent or unreadable: 0."""
    t = (text or "").strip().lower()
    if t in ("infinity", "+infinity"):
        return _INFINITY
    if t == "-infinity":
        return -_INFINITY
    try:
        return max(-_INFINITY, min(_INFINITY, int(t)))
    except ValueError:
        return 0


# ---- primitives -> descriptions -----------------------------------------------------------------

class VolumeImport(Record):
    """The import of one volume's primitives: the reading, and which primitives it came from."""

    reading: Reading
    primitives: list[Primitive] = Factory(list)   # the primitives of the volume, CIB order


def read(cib: Cib, relpath: Callable[[str], str | None]) -> VolumeImport:
    """Descriptions of the exports the primitives of one volume make (see the module docstring).

    `relpath(directory)`: the directory's path in the volume (resolved as the agent resolves
    it), None when outside. A primitive that cannot be taken refuses every directory it names
    in the volume; a directory one of whose primitives is refused is refused as a whole.
    """
    reading = Reading()
    out = VolumeImport(reading)
    by_dir: dict[str, list[tuple[Primitive, str, str]]] = {}   # rel -> (primitive, directory, fsid)
    refused_dirs: set[str] = set()
    for ref in cib.unreadable:
        reading.refusals.append(ref)
    for prim in cib.primitives:
        try:
            directories = split_directories(" ".join(prim.directory.split()))
            rels = [relpath(d) for d in directories]
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(f"primitive {prim.id}", exc))
            continue
        inside = [r for r in rels if r is not None]
        if not inside:
            reading.outside += 1
            continue
        out.primitives.append(prim)
        try:
            if len(inside) != len(rels):
                raise ValidationError("directory", "names directories inside and outside the volume; one resource "
                                                   "cannot take over part of a primitive")
            fsids = directory_fsids(prim.fsid, len(directories))
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(f"primitive {prim.id}", exc))
            refused_dirs.update(inside)
            continue
        for rel, directory, fsid in zip(inside, directories, fsids):
            by_dir.setdefault(rel, []).append((prim, directory, fsid or ""))
        if prim.param("rmtab_backup", ".rmtab") != ".rmtab":
            reading.notes.append(f"primitive {prim.id}: rmtab_backup is not needed (the volume's rmtab lines are "
                                 "kept in <volume>/.ganesha-ha/rmtab)")
    for rel, items in by_dir.items():
        names = ", ".join(p.id for p, _, _ in items)
        where = f"{items[0][1]} (primitive {names})"
        if rel in refused_dirs:
            reading.refusals.append(Refusal(where, ValidationError("directory", "another primitive of this directory "
                                                                                "is refused (above)")))
            continue
        try:
            reading.descriptions.append(_description(rel, items, f"primitive {names}"))
        except GaneshaHAError as exc:
            reading.refusals.append(Refusal(where, exc))
    return out


def _description(rel: str, items: Sequence[tuple[Primitive, str, str]], source: str) -> Description:
    fsids = sorted({fsid for _, _, fsid in items})
    if len(fsids) > 1:
        raise ValidationError("fsid", f"its primitives give it different fsids ({', '.join(fsids)}): knfsd keeps "
                                      "one per client, ganesha-ha one per export (its file handles); give them the "
                                      "same fsid first")
    clients = []
    for prim, _, _ in items:
        if re.search(r"\s", prim.clientspec):
            raise ValidationError("clientspec", f"{prim.clientspec!r} (primitive {prim.id}): the agent passes one "
                                                "client")
        try:
            host = unbracket(prim.clientspec)   # [fd00::1], [fd00::]/64
            opts, _ = split_options(prim.options)   # the fsid parameter is the agent's, not options' fsid=
        except ValidationError as exc:
            raise ValidationError(exc.field, f"primitive {prim.id}: {exc.message.split(': ', 1)[-1]}") from None
        if not any(o in ACCESS_OPTIONS for o in opts):
            opts.insert(0, "ro")   # exportfs's default, said out loud
        try:
            clients.append(ClientSpec(host, tuple(opts)))
        except ValidationError as exc:  # name the primitive: a directory may have several
            raise ValidationError(exc.field, f"primitive {prim.id}: {exc.message.split(': ', 1)[-1]}") from None
    return Description(rel, clients=tuple(clients), fsid=fsids[0], access="RW", squash="root_squash",
                       by_meaning=True, source=source)


# ---- the replacement ------------------------------------------------------------------------------

CONFIG, STATUS = "config", "status"


class Command(Record, frozen=True):
    """One command line: `argv`, and whether it changes the configuration or only the
    cluster's status (clearing the history, which a CIB file has no use for)."""

    argv: tuple[str, ...]
    kind: str = CONFIG

    def __str__(self) -> str:
        return shlex.join(self.argv)


class Replacement(Record):
    resource_id: str
    group: str | None
    notify_id: str | None = None    # the ocf:ganesha-ha:notify resource the commands add, if any
    pcs: list[Command] = Factory(list)
    crmsh: list[Command] = Factory(list)
    notes: list[str] = Factory(list)


def replacement(cib: Cib, prims: Sequence[Primitive], *, volume: str, server: str,
                resource_id: str | None = None) -> Replacement:
    """The commands that replace `prims` (one volume's exportfs primitives) by one exports
    resource (see the module docstring) and add the group's ocf:ganesha-ha:notify last in the
    group, as the README's recipe has it. ValidationError when that cannot be said in commands:
    a volume served by Ganesha (the cut-over keeps knfsd's exports for the new resource to
    adopt, which only knfsd can), primitives in several groups, an id or a mount point that is
    not one word."""
    if not prims:
        raise ValidationError("cib", "no exportfs primitive of this volume to replace")
    if server != "knfsd":
        raise ValidationError("cib", f"the volume is served by {server}: a switch from knfsd cannot keep its "
                                     "exports live (the clients get new file handles, and knfsd holds port "
                                     "2049); stop the exportfs primitives, delete them, stop knfsd on every "
                                     "node, then create the exports resource as in the README's recipe")
    groups = sorted({p.group or "" for p in prims})
    if len(groups) > 1:
        shown = ", ".join(g or "(no group)" for g in groups)
        raise ValidationError("cib", f"the volume's primitives are in different groups ({shown}); one resource "
                                     "cannot take their places")
    group = groups[0] or None
    if not _SAFE_VALUE_RE.fullmatch(volume):
        raise ValidationError("volume", f"{volume!r} is not one plain word in a shell or crmsh line; write the "
                                        "commands by hand")
    rid = resource_id or _default_id(group, volume)
    if not _ID_RE.fullmatch(rid):
        raise ValidationError("--resource-id", f"{rid!r} is not a CIB id (a letter or '_', then letters, digits, "
                                               "'_', '.', '-')")
    if rid in cib.ids:
        raise ConflictError(f"the CIB already has an element with id {rid!r}; give another with --resource-id")
    params = [f"server={server}", f"volume={volume}"]
    notes = []
    for name, default in _STOP_PARAMS.items():
        values = {_ocf_is_true(p.param(name, default)) for p in prims}
        # the safer value where they differ: release the locks, wait out the lease
        value = True if len(values) > 1 else values.pop()
        if len({p.param(name, default) for p in prims}) > 1:
            notes.append(f"the primitives differ in {name}; the exports resource takes {int(value)}")
        if value != _ocf_is_true(default):
            params.append(f"{name}={int(value)}")
    ips = cib.ips.get(group or "", [])
    ip = None
    if len(ips) == 1:
        ipaddress.ip_address(ips[0].split("/")[0])
        ip = ips[0]
        params.append(f"ip={ip}")
    elif len(ips) > 1:
        notes.append(f"the group {group} has {len(ips)} IP addresses; give the exports resource the clients' "
                     "one as ip=")
    op_words = _op_words(ACTIONS)
    members = cib.groups.get(group or "", [])
    ours = {p.id for p in prims}
    first = next((m for m in members if m in ours), None)
    old = [p.id for p in prims]
    out = Replacement(rid, group, notes=notes)
    for p in prims:
        for cons in cib.constraints.get(p.id, []):
            out.notes.append(f"constraint {cons} names {p.id} and goes with it; make one for {rid} if it is "
                             "still wanted")
    if not cib.maintenance:
        out.pcs.append(Command(("pcs", "property", "set", "maintenance-mode=true")))
        out.crmsh.append(Command(("crm", "configure", "property", "maintenance-mode=true")))
    create = ["pcs", "resource", "create", rid, AGENT, *params, "op"]
    for name, *words in op_words:
        create += [name, *words]
    if group:
        create += ["--group", group, "--before", first or old[0]]
    create.append("--no-default-ops")
    out.pcs.append(Command(tuple(create)))
    primitive = ["crm", "configure", "primitive", rid, AGENT, "params", *params]
    for name, *words in op_words:
        primitive += ["op", name, *words]
    out.crmsh.append(Command(tuple(primitive)))
    if group:
        out.crmsh.append(Command(("crm", "configure", "modgroup", group, "add", rid, "before", first or old[0])))
    _add_notify(out, cib, group, ip, volume=volume, first=first)
    for pid in old:
        out.pcs.append(Command(("pcs", "resource", "delete", pid, "--force")))
    out.crmsh.append(Command(("crm", "configure", "delete", "--force", *old)))
    for pid in old:
        cleanup = Command(("crm_resource", "--refresh", "--resource", pid), STATUS)
        out.pcs.append(cleanup)
        out.crmsh.append(cleanup)
    if not cib.maintenance:
        out.pcs.append(Command(("pcs", "property", "set", "maintenance-mode=false")))
        out.crmsh.append(Command(("crm", "configure", "property", "maintenance-mode=false")))
    return out


def _add_notify(out: Replacement, cib: Cib, group: str | None, ip: str | None, *, volume: str,
                first: str | None) -> None:
    """Add to `out` the commands creating the group's ocf:ganesha-ha:notify last in the group,
    after its IP and the exports (it sends SM_NOTIFY from that IP, and the notified clients
    reclaim at once: notify_agent.py), or a note saying why there is none. A group that has one
    already is left as it is. A group starting its IP before the exports (`first`, where the
    exports resource goes) gets a note: the recipe has file system, exports, IP, notify."""
    members = cib.groups.get(group or "", [])
    if any(cib.kinds.get(m) == _NOTIFY_KIND for m in members):
        return
    for m in members:
        if cib.kinds.get(m) == _NFSNOTIFY_KIND:
            out.notes.append(f"{m} (ocf:heartbeat:nfsnotify) notifies from this node's statd records, "
                             "not the volume's: delete it once the notify resource runs")
    ip_id = next((m for m in members if cib.kinds.get(m) in _IP_AGENTS), None)
    if ip_id is not None and first in members and members.index(ip_id) < members.index(first):
        out.notes.append(f"the group starts {ip_id} before the exports: clients reach the node before its exports "
                         "are live (NFS4ERR_STALE, ESTALE); the recipe orders file system, exports, IP, notify")
    if ip is None or ip_id is None:
        out.notes.append(f"no {NOTIFY_AGENT} resource: it needs the volume's floating IP in its group; without "
                         "it NFSv3 clients are not told to reclaim their NLM locks after a move")
        return
    nid = re.sub(r"-exports$", "", out.resource_id) + "-notify"
    if nid in cib.ids:
        out.notes.append(f"no {NOTIFY_AGENT} resource: the CIB already has an element with id {nid!r}; create "
                         f"it by hand, last in the group (ip={ip} volume={volume})")
        return
    out.notify_id = nid
    params = [f"ip={ip}", f"volume={volume}"]
    create = ["pcs", "resource", "create", nid, NOTIFY_AGENT, *params, "op"]
    primitive = ["crm", "configure", "primitive", nid, NOTIFY_AGENT, "params", *params]
    for name, *words in _op_words(NOTIFY_ACTIONS):
        create += [name, *words]
        primitive += ["op", name, *words]
    out.pcs.append(Command((*create, "--group", group or "", "--no-default-ops")))   # appended: last
    out.crmsh.append(Command(tuple(primitive)))
    out.crmsh.append(Command(("crm", "configure", "modgroup", group or "", "add", nid)))


def _op_words(actions: Sequence[tuple[str, str, str | None]]) -> list[tuple[str, ...]]:
    """The monitor, start and stop ops with an agent's advised timeouts (its meta-data's)."""
    ops = {name: (timeout, interval) for name, timeout, interval in actions}
    return [("monitor", f"interval={ops['monitor'][1]}", f"timeout={ops['monitor'][0]}"),
            ("start", "interval=0s", f"timeout={ops['start'][0]}"),
            ("stop", "interval=0s", f"timeout={ops['stop'][0]}")]


def _ocf_is_true(value: str) -> bool:
    """A boolean parameter as the upstream agent reads it (ocf-shellfuncs' ocf_is_true)."""
    return value.strip().lower() in ("yes", "y", "1", "true", "on")


def _default_id(group: str | None, volume: str) -> str:
    if group:
        stem = re.sub(r"[-_]?(group|grp)$", "", group) or group
    else:
        stem = volume.rstrip("/").rsplit("/", 1)[-1] or "volume"
    stem = re.sub(r"[^A-Za-z0-9_.-]", "-", stem)
    if not re.match(r"[A-Za-z_]", stem):
        stem = "v" + stem
    return f"{stem}-exports"

"""The classic mode's parameters, a drop-in for ocf:heartbeat:exportfs: parsed and checked (pure).

The rules follow upstream's agent (heartbeat/exportfs in ClusterLabs/resource-agents):
- `directory`: one directory, or several separated by spaces, each its own export; a
  trailing '/' is dropped (upstream's `sed 's/\\/*$//'`);
- `fsid` (or `fsid=` in `options`, which `fsid` overrides): with several directories it must
  be a whole number and the directories get fsid, fsid+1, ... in the order given (upstream's
  `bump_fsid`); without one, each directory's fsid is generated once and kept on the volume;
- `clientspec`: upstream takes one client per primitive, with an IPv6 address or network in
  brackets, as exportfs's `CLIENT:DIR` argument needs (`[2001:db8::10]`, `[2001:db8::]/64`);
  here several clients may be given, separated by spaces, bracketed or not;
- `options`: exportfs options for every client (model.py's client options);
- `unlock_on_stop`, `wait_for_leasetime_on_stop` concern both modes (ocf.param_bool);
  `rmtab_backup` is accepted and not needed: the volume's rmtab lines are kept in
  `<volume>/.ganesha-ha/rmtab` (recovery/rmtab.py), whatever it says.
Where this differs from upstream, it refuses (ValidationError, OCF_ERR_CONFIGURED): an fsid
of 0 or "root" (the NFSv4 pseudo root, never exported by ganesha-ha), a relative or repeated
directory, a client or option the model does not accept.
"""
from __future__ import annotations

from .errors import ValidationError
from .clientspec import ClientSpec
from .model import normalize_fsid
from .record import Record
from .textcheck import LazyPattern, check_text

_BRACKETED_RE = LazyPattern(r"\[([0-9A-Fa-f:.]+)\](/[0-9]{1,3})?")
_DECIMAL_RE = LazyPattern(r"[0-9]+")


class ClassicParams(Record, frozen=True):
    """What a classic primitive asks for: one export per directory, all for the same clients."""

    directories: tuple[str, ...]            # absolute, no trailing '/', in the order given
    clients: tuple[ClientSpec, ...]         # every client, with the options
    fsids: tuple[str | None, ...]           # per directory: the fsid given, or None (generated once)


def split_directories(text: str) -> tuple[str, ...]:
    """`directory`: absolute paths separated by spaces, each without its trailing '/'."""
    check_text("directory", text)
    out: list[str] = []
    for word in text.split(" "):
        if not word:
            continue
        if not word.startswith("/"):
            raise ValidationError("directory", f"must be an absolute path, got {word!r}")
        word = word.rstrip("/") or "/"
        if word in out:
            raise ValidationError("directory", f"{word} is given twice")
        out.append(word)
    if not out:
        raise ValidationError("directory", "is empty")
    return tuple(out)


def unbracket(spec: str) -> str:
    """An IPv6 client as upstream writes it for exportfs's CLIENT:DIR argument, without the
    brackets (`[2001:db8::]/64` -> `2001:db8::/64`); other specs unchanged. Brackets around
    anything but an IPv6 address are refused."""
    if not spec.startswith("["):
        return spec
    m = _BRACKETED_RE.fullmatch(spec)
    if m is None or ":" not in m.group(1):
        raise ValidationError("clientspec", f"{spec!r}: brackets hold an IPv6 address, "
                                            "as in [2001:db8::10] or [2001:db8::]/64")
    return m.group(1) + (m.group(2) or "")


def split_options(text: str) -> tuple[list[str], str]:
    """`options` -> (the options other than fsid, the value of fsid= or '')."""
    check_text("options", text)
    kept, fsid = [], ""
    for opt in (o.strip() for o in text.split(",")):
        if not opt:
            continue
        if opt.lower().startswith("fsid="):
            fsid = opt[5:].strip()
        else:
            kept.append(opt)
    return kept, fsid


def directory_fsids(given: str, count: int) -> tuple[str | None, ...]:
    """The fsid of each of `count` directories from the fsid given ('' : None each).

    One directory: the fsid as given (a number or UUID). Several: upstream's rule, a whole
    number n giving n, n+1, ...; each is then checked as an fsid (0 and "root" refused)."""
    if not given:
        return (None,) * count
    if count == 1:
        return (normalize_fsid(given),)
    if not _DECIMAL_RE.fullmatch(given):
        raise ValidationError("fsid", f"use a whole number with several directories (each gets the next "
                                      f"one, as ocf:heartbeat:exportfs does), got {given!r}")
    return tuple(normalize_fsid(str(int(given) + i)) for i in range(count))


def parse_classic(directory: str, clientspec: str, options: str = "", fsid: str = "",
                  rmtab_backup: str = "") -> ClassicParams:
    """The classic parameters (each as Pacemaker passes it) checked and parsed;
    ValidationError naming the parameter for anything the classic mode cannot serve."""
    directories = split_directories(directory)
    check_text("clientspec", clientspec)
    specs = [unbracket(s) for s in clientspec.split(" ") if s]
    if not specs:
        raise ValidationError("clientspec", "is empty: name the client(s) to export to")
    kept, options_fsid = split_options(options)
    opt_text = f"({','.join(kept)})" if kept else ""
    clients = tuple(ClientSpec.parse(f"{s}{opt_text}") for s in specs)
    hosts = [c.host for c in clients]
    if len(set(hosts)) != len(hosts):
        raise ValidationError("clientspec", "a client is given more than once")
    check_text("fsid", fsid)
    check_text("rmtab_backup", rmtab_backup)
    return ClassicParams(
        directories=directories, clients=clients,
        fsids=directory_fsids(fsid.strip() or options_fsid, len(directories)))

"""ganesha-ha's own settings: an INI file read with configobj against a configspec.

A typo is an error that names the file and line (configobj reports parse errors with their
line; the configspec rejects unknown keys and bad values), never a silent default.

configobj and its validator cost about 30 ms to import and set up, paid by the resource agent
at every call (every monitor). So a file in the plain subset of the syntax (`[section]`,
`key = value`, comments; nothing configobj would read as a list, an interpolation or a
multi-line value) whose every value passes its check is read by `_read_simple`, and
everything else (any doubt, any error) goes to configobj, which stays the authority and
the one that words the errors. The configspec is the one source of defaults for both;
tests/unit/test_settings.py checks that both readers agree.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError
from .record import Record

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG = Path("/etc/ganesha-ha/ganesha-ha.conf")
ENV_CONFIG = "GANESHA_HA_CONFIG"


class Settings(Record, frozen=True):
    ganesha: dict[str, Any]
    instance: dict[str, Any]
    knfsd: dict[str, Any]
    node: dict[str, Any]
    nsm: dict[str, Any]
    registry: dict[str, Any]
    log: dict[str, Any]
    source: str


def _spec_lines() -> list[str]:
    # read beside this module: importlib.resources costs several ms on the agent's monitor path
    return (Path(__file__).parent / "data" / "configspec.ini").read_text().splitlines()


# ---- the plain subset, without configobj -------------------------------------------------
_Spec = dict[str, dict[str, tuple[str, dict[str, str]]]]   # {section: {key: (check, {arg: text})}}
_NO = object()   # "not sure": leave this file to configobj
_BOOLEANS = {"true": True, "on": True, "1": True, "yes": True,
             "false": False, "off": False, "0": False, "no": False}   # validate's bool_dict
_SPECIAL = "\"'#,%$"   # quotes, comments, list commas, interpolation: configobj's business


def _unquote(text: str) -> str | None:
    """`"text"` or `'text'` without quotes inside, or None."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" and not any(q in text[1:-1] for q in "\"'"):
        return text[1:-1]
    return None


def _parse_spec(lines: list[str]) -> _Spec | None:
    """The configspec as {section: {key: (check, args)}}, e.g. `dbus_timeout = float(min=0.5,
    max=300, default=10)` -> ("float", {"min": "0.5", "max": "300", "default": "10"});
    None for any form this reader does not know (configobj then reads every file)."""
    spec: _Spec = {}
    section: dict[str, tuple[str, dict[str, str]]] | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = spec.setdefault(line[1:-1].strip(), {})
            continue
        key, eq, call = line.partition("=")
        check, paren, rest = call.strip().partition("(")
        args = _parse_args(rest[:-1]) if rest.endswith(")") else None
        if section is None or not eq or not paren or args is None:
            return None
        section[key.strip()] = (check.strip(), args)
    return spec


def _parse_args(text: str) -> dict[str, str] | None:
    """`min=0.5, max=300, default="3, 4"` -> {"min": "0.5", "max": "300", "default": "3, 4"}."""
    args: dict[str, str] = {}
    while text.strip():
        name, eq, text = text.partition("=")
        text = text.lstrip()
        if not eq:
            return None
        if text[:1] in ("'", '"'):
            end = text.find(text[0], 1)
            if end < 0:
                return None
            value, text = text[1:end], text[end + 1:].lstrip()
            if text and not text.startswith(","):
                return None
            text = text[1:]
        else:
            value, _, text = text.partition(",")
            value = value.strip()
        args[name.strip()] = value
    return args


def _check(check: str, args: dict[str, str], text: str) -> Any:
    """`text` converted by the configspec check, or _NO when it is not plainly valid."""
    if not set(args) <= ({"min", "max", "default"} if check in ("integer", "float") else {"default"}):
        return _NO
    if check == "string":
        return text
    if check == "boolean":
        return _BOOLEANS.get(text.lower(), _NO)
    digits = text[1:] if text.startswith("-") else text
    if check == "integer" and digits.isascii() and digits.isdigit():
        value: Any = int(text)
    elif (check == "float" and digits.isascii() and digits.count(".") <= 1
          and digits.replace(".", "").isdigit()):
        value = float(text)
    else:
        return _NO
    low, high = args.get("min"), args.get("max")
    if (low is not None and value < float(low)) or (high is not None and value > float(high)):
        return _NO
    return value


def _read_simple(text: str, spec: _Spec) -> dict[str, dict[str, Any]] | None:
    """Settings from a file in the plain subset, defaults from the spec; None when in doubt."""
    given: dict[str, dict[str, Any]] = {}
    name = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            name = line[1:-1] if line.endswith("]") else ""
            if name not in spec or name in given:
                return None
            given[name] = {}
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not name or not eq or key not in spec[name] or key in given[name]:
            return None
        inner = _unquote(value)
        if inner is None and any(c in value for c in _SPECIAL):
            return None
        if inner is not None and any(c in inner for c in "%$"):   # interpolated even when quoted
            return None
        value = value if inner is None else inner
        check, args = spec[name][key]
        converted = _check(check, args, value)
        if converted is _NO:
            return None
        given[name][key] = converted
    result: dict[str, dict[str, Any]] = {}
    for name, keys in spec.items():
        result[name] = {}
        for key, (check, args) in keys.items():
            if key in given.get(name, {}):
                result[name][key] = given[name][key]
                continue
            if "default" not in args:
                return None
            default = _check(check, args, args["default"])
            if default is _NO:
                return None
            result[name][key] = default
    return result


def _load_simple(cfg_path: Path) -> dict[str, dict[str, Any]] | None:
    """_read_simple of `cfg_path` (no file: the defaults), or None for configobj to read it."""
    spec = _parse_spec(_spec_lines())
    if spec is None:
        return None
    try:
        text = cfg_path.read_bytes().decode("utf-8") if cfg_path.is_file() else ""
    except (OSError, UnicodeDecodeError):
        return None
    if text.startswith("\ufeff"):
        return None
    return _read_simple(text, spec)


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from `path`, $GANESHA_HA_CONFIG or /etc/ganesha-ha/ganesha-ha.conf.

    An explicitly named file must exist; the default file may be absent (defaults apply).
    """
    explicit = path or os.environ.get(ENV_CONFIG)
    cfg_path = Path(explicit) if explicit else DEFAULT_CONFIG
    try:
        is_file = cfg_path.is_file()
    except OSError as exc:  # a name too long, ...: the path itself is wrong
        raise ConfigError(f"{cfg_path}: {exc.strerror}") from None
    if explicit and not is_file:
        raise ConfigError(f"{cfg_path}: configuration file not found")
    source = str(cfg_path) if is_file else "(defaults)"
    simple = _load_simple(cfg_path)
    if simple is not None:
        return Settings(ganesha=simple["ganesha"], instance=simple["instance"], knfsd=simple["knfsd"],
                        node=simple["node"],
                        nsm=simple["nsm"], registry=simple["registry"], log=simple["log"], source=source)
    return _load_configobj(cfg_path, source)


def _load_configobj(cfg_path: Path, source: str) -> Settings:
    """The authoritative reader: configobj against the configspec, errors with their line."""
    from . import lazysite

    lazysite.enable()  # configobj lives in site-packages
    from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
    from validate import Validator

    try:
        cfg = ConfigObj(str(cfg_path) if cfg_path.is_file() else None, configspec=_spec_lines(),
                        file_error=False, encoding="utf-8", raise_errors=True)
        result = cfg.validate(Validator(), preserve_errors=True)  # interpolates: may raise too
    except ConfigObjError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    if result is not True:
        for sections, key, err in flatten_errors(cfg, result):
            where = "/".join(sections + ([key] if key else []))
            line = _line_of(cfg_path, key) if key else None
            at = f" (line {line})" if line else ""
            limit = _limit(sections, key, err)
            reason = (f"{str(err).rstrip('.')}{limit}" if limit else err) if err else "missing section"
            raise ConfigError(f"{cfg_path}{at}: {where}: {reason}")
    extra = get_extra_values(cfg)
    if extra:
        sections, name = extra[0]
        line = _line_of(cfg_path, name)
        at = f" (line {line})" if line else ""
        what = "/".join(list(sections) + [name])
        raise ConfigError(f"{cfg_path}{at}: unknown setting {what!r}")
    return Settings(ganesha=dict(cfg["ganesha"]), instance=dict(cfg["instance"]), knfsd=dict(cfg["knfsd"]),
                    node=dict(cfg["node"]),
                    nsm=dict(cfg["nsm"]), registry=dict(cfg["registry"]), log=dict(cfg["log"]), source=source)


def _limit(sections: list[str], key: str | None, err: object) -> str:
    """" (at most 270)" for validate's "the value "500" is too big." (which names no limit), from
    the configspec; "" for any other error."""
    from validate import VdtValueTooBigError, VdtValueTooSmallError

    bound = {VdtValueTooBigError: ("max", "at most"), VdtValueTooSmallError: ("min", "at least")}.get(type(err))
    args = ((_parse_spec(_spec_lines()) or {}).get("/".join(sections), {}).get(key or "", ("", {})))[1]
    return f" (it must be {bound[1]} {args[bound[0]]})" if bound and bound[0] in args else ""


def _line_of(path: Path, key: str) -> int | None:
    try:
        for num, line in enumerate(path.read_text().splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith(key) and (stripped[len(key):].lstrip().startswith("=")
                                             or stripped == f"[{key}]"):
                return num
            if stripped == f"[{key}]":
                return num
    except OSError:
        return None
    return None

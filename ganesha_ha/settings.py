"""ganesha-ha's own settings: an INI file read with configobj against a configspec.

A typo is an error that names the file and line (configobj reports parse errors with their
line; the configspec rejects unknown keys and bad values), never a silent default.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG = Path("/etc/ganesha-ha/ganesha-ha.conf")
ENV_CONFIG = "GANESHA_HA_CONFIG"


@dataclass(frozen=True)
class Settings:
    ganesha: dict[str, Any]
    knfsd: dict[str, Any]
    node: dict[str, Any]
    registry: dict[str, Any]
    log: dict[str, Any]
    source: str


def _spec_lines() -> list[str]:
    # read beside this module: importlib.resources costs several ms on the agent's monitor path
    return (Path(__file__).parent / "data" / "configspec.ini").read_text().splitlines()


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Load settings from `path`, $GANESHA_HA_CONFIG or /etc/ganesha-ha/ganesha-ha.conf.

    An explicitly named file must exist; the default file may be absent (defaults apply).
    """
    from configobj import ConfigObj, ConfigObjError, flatten_errors, get_extra_values
    from validate import Validator

    explicit = path or os.environ.get(ENV_CONFIG)
    cfg_path = Path(explicit) if explicit else DEFAULT_CONFIG
    if explicit and not cfg_path.is_file():
        raise ConfigError(f"{cfg_path}: configuration file not found")
    source = str(cfg_path) if cfg_path.is_file() else "(defaults)"
    try:
        cfg = ConfigObj(str(cfg_path) if cfg_path.is_file() else None, configspec=_spec_lines(),
                        file_error=False, encoding="utf-8", raise_errors=True)
    except ConfigObjError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from None
    result = cfg.validate(Validator(), preserve_errors=True)
    if result is not True:
        for sections, key, err in flatten_errors(cfg, result):
            where = "/".join(sections + ([key] if key else []))
            line = _line_of(cfg_path, key) if key else None
            at = f" (line {line})" if line else ""
            reason = err if err else "missing section"
            raise ConfigError(f"{cfg_path}{at}: {where}: {reason}")
    extra = get_extra_values(cfg)
    if extra:
        sections, name = extra[0]
        line = _line_of(cfg_path, name)
        at = f" (line {line})" if line else ""
        what = "/".join(list(sections) + [name])
        raise ConfigError(f"{cfg_path}{at}: unknown setting {what!r}")
    return Settings(ganesha=dict(cfg["ganesha"]), knfsd=dict(cfg["knfsd"]), node=dict(cfg["node"]),
                    registry=dict(cfg["registry"]), log=dict(cfg["log"]), source=source)


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

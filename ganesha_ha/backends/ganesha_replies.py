"""NFS-Ganesha's answers to live changes, read into one-line messages (pure, no D-Bus).

AddExport/UpdateExport replies ("N exports added. Errors found: Config File (FILE:LINE):
TEXT ..."), its D-Bus errors ("... because N errors. Details: ...", src/support/export_mgr.c)
and the reasons ganesha-ha gives for an export Ganesha would grant to nobody: one line each,
with the file (ours) left out and an FSAL's secrets scrubbed, since they end in an exit
reason of 128 characters or a CLI line.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..fsal_schema import REDACTED
from ..model import Export
from .grants import host_names

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any


def scrub(text: str, secrets: Sequence[str]) -> str:
    """`text` with every secret value replaced: Ganesha's messages may quote a value."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def serves_nobody_reason(exp: Export) -> str:
    return (f"Export_Id {exp.export_id} ({exp.pseudo}): no client of it resolves on this node "
            f"({', '.join(c.host for c in exp.clients)}): Ganesha would grant it to nobody here")


def one_line(text: str, limit: int = 600) -> str:
    out = " ".join(text.split())
    return out if len(out) <= limit else out[: limit - 1] + "…"


def reply_errors(message: str) -> list[str]:
    """The error lines of an AddExport/UpdateExport reply ("1 exports added. Errors found:\n
    Config File (/run/.../export-7.conf:5): Syntax error in statement\n..."); empty without
    "Errors found"."""
    head, sep, rest = message.partition("Errors found:")
    return detail_lines(rest) if sep else []


def detail_lines(text: str) -> list[str]:
    """Ganesha's "Config File (FILE:LINE): TEXT" lines as "line LINE: TEXT" (the file is ours),
    whitespace collapsed, repeats dropped, in order."""
    out: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Config File (") and "): " in line:
            where, _, rest = line[len("Config File ("):].partition("): ")
            line = f"line {where.rpartition(':')[2]}: {rest}" if ":" in where else rest
        line = " ".join(line.split())
        if line and line not in out:
            out.append(line)
    return out or ["(no details)"]


def condensed(message: str) -> str:
    """A D-Bus error message of Ganesha's on one line: its first sentence (file names without
    their directory) and its detail lines joined with '; ' (export_mgr.c formats
    "... because %s errors. Details:\n%s")."""
    head, sep, rest = message.partition("Details:")
    head = " ".join(w.rpartition("/")[2] if w.startswith("/") else w for w in head.split())
    if not sep:
        return one_line(head)
    return one_line(f"{head} {'; '.join(detail_lines(rest))}")


def unresolved_error(error: str, exp: Export) -> bool:
    """Ganesha's "Client (NAME) not found because ..." for a host name of `exp`: a warning, not
    a failure (grants.py). Ganesha's getaddrinfo decides, not ours: they may differ in time."""
    text = error.partition(": ")[2] if error.startswith("line ") else error
    if not (text.startswith("Client (") and ") not found because" in text):
        return False
    name = text[len("Client ("):text.index(") not found because")]
    return name in host_names(exp)


def explain(method: str, exp: Export, exc: Any) -> str:
    name = exc.get_dbus_name() or ""
    msg = condensed(exc.get_dbus_message() or "")
    where = f"Export_Id {exp.export_id} ({exp.pseudo})"
    if "already active" in msg:
        return f"Ganesha {method} of {where}: the id is already active"
    if name.endswith("InvalidArgs") and method == "AddExport":
        return (f"Ganesha rejected the EXPORT block of {where} (syntax error; see Ganesha's log): "
                f"{msg or name}")
    return f"Ganesha {method} of {where} failed: {msg or name}"

"""Several exports in one AddExport (pure): the file, and which export each of Ganesha's
complaints is about.

Ganesha's `AddExport(file, expression)` parses the file once and loads every EXPORT block
the expression matches, in file order (src/support/export_mgr.c `gsh_export_addexport`: a
loop over the list of src/config_parsing/config_parsing.c `find_config_nodes`, whose
`match_block` takes a qualifier value `*` as "any block that has this parameter"). So
`EXPORT(Export_Id=*)` loads all the blocks of a file: one parse and one D-Bus round trip
for N exports. What Ganesha 4.3 answers (same source, measured against ganesha.nfsd 4.3):

- "K exports added": K blocks loaded (a block with harmless errors counts; one whose
  Export_Id is live already is skipped and the others still load);
- "K exports added. Errors found:" then lines "Config File (FILE:LINE): TEXT": a partial
  success, each of those blocks live without what Ganesha could not read;
- a block that fails to load ends the loop: the blocks before it are live, it and those
  after it are not, and the call fails (InvalidFileContent "K export entries in FILE added
  because ... errors. Details:" then the same lines);
- a file Ganesha cannot parse: nothing is added (InvalidFileContent "Error while parsing").

Every complaint names the file and line (config_parsing.c `config_proc_error`), so the line
tells which export's block it is about (`Batch.attribute`), and one bad export in a batch is
reported alone, with the same words and line number as if it had been added on its own.
"""
from __future__ import annotations

import re
from pathlib import PurePath

from ..model import Export
from ..record import Record
from .ganesha_conf import RenderOptions, render_export, render_module_blocks

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from typing import Any

BATCH_MAX = 100   # exports per AddExport: a batch's read-back (one DisplayExport each) and two
                  # AddExports are on the way together, below the bus's 128 pending replies per
                  # connection (dbus-daemon's max_replies_per_connection); Ganesha spends less CPU
                  # per export on files of ~100 blocks than of 256 or 1000 (bench/gstart.py
                  # --batch-sizes); and its one D-Bus thread, busy ~0.6 ms per export, keeps other
                  # volumes' monitors waiting for less than a tenth of a second
EVERY_EXPORT = "EXPORT(Export_Id=*)"
_LOCATED = re.compile(r"^Config File \((?P<file>.*):(?P<line>\d+)\): (?P<text>.*)$")
_ADDED = re.compile(r"^(\d+) exports added(?:\.|$)")


def batchable(exp: Export) -> bool:
    """Whether `exp` may share an AddExport file with others: not when its FSALs need module
    blocks (`MEM { ... }`): Ganesha reads a module block only from the file that first loads
    the module and refuses a repeated one (ganesha_conf.render_module_blocks)."""
    return not render_module_blocks(exp.ganesha.fsal)


class Span(Record, frozen=True):
    export: Export
    first: int     # the block's first line in the batch file (1-based)
    last: int      # its last line


class Batch(Record, frozen=True):
    """The AddExport file of several exports and where each one's block is in it."""

    text: str
    spans: tuple[Span, ...]

    def owner(self, line: int) -> Span | None:
        for span in self.spans:
            if span.first <= line <= span.last:
                return span
        return None

    def attribute(self, details: str, file: str) -> tuple[dict[int, list[str]], list[str]]:
        """Ganesha's complaints (the text of a reply or of an error) about this batch written
        to `file`, per Export_Id, each as "line L: TEXT" with L counted in the export's own
        block (as `render_export` alone would number it), whitespace collapsed, repeats
        dropped; and the lines no block of this batch owns (another file, no place), as they are."""
        per: dict[int, list[str]] = {}
        other: list[str] = []
        for raw in details.splitlines():
            raw = raw.strip()
            m = _LOCATED.match(raw)
            span = self.owner(int(m.group("line"))) if m and m.group("file") == file else None
            if span is None:
                if raw:
                    other.append(" ".join(raw.split()))
                continue
            text = f"line {int(m.group('line')) - span.first + 1}: {' '.join(m.group('text').split())}"
            mine = per.setdefault(span.export.export_id, [])
            if text not in mine:
                mine.append(text)
        return per, other


def render_batch(exports: list[Export], mountpoint: str | PurePath, opts: RenderOptions) -> Batch:
    """One file holding the EXPORT block of each export, in the given order (Ganesha loads
    them in file order: the plan's order). Every export must be `batchable`."""
    chunks: list[str] = []
    spans: list[Span] = []
    line = 1
    memo: dict[Any, str] = {}   # the blocks' shared tails (render_export)
    for exp in exports:
        if not batchable(exp):
            raise ValueError(f"Export_Id {exp.export_id} needs module blocks: it goes in a file of its own")
        block = render_export(exp, mountpoint, opts, memo)
        n = block.count("\n")
        spans.append(Span(exp, line, line + n - 1))
        chunks.append(block)
        line += n
    return Batch("".join(chunks), tuple(spans))


def added_count(reply: str) -> int | None:
    """K of an AddExport reply "K exports added[. Errors found: ...]"; None for another reply."""
    m = _ADDED.match(reply)
    return int(m.group(1)) if m else None


def complaints(message: str) -> str:
    """The part of an AddExport reply or error that lists Ganesha's complaints: after
    "Errors found:" (a partial success) or "Details:" (a failure); "" when there is none."""
    for mark in ("Errors found:", "Details:"):
        head, sep, rest = message.partition(mark)
        if sep:
            return rest
    return ""


class PendingBatch:
    """Exports on their way in one AddExport: those that render (`ready`), and for two or
    more their file (`text`: a Batch, written to `conf`) and their FSALs' secrets."""

    __slots__ = ("ready", "text", "conf", "secrets")

    def __init__(self, ready: list[Export], text: Batch | None = None, conf: PurePath | None = None,
                 secrets: list[str] | None = None):
        self.ready, self.text, self.conf, self.secrets = ready, text, conf, secrets or []

"""Human output shared by the CLI and the lab: aligned, short, no trailing blanks."""
from __future__ import annotations


def table(rows: list[list[str]], header: list[str]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def fit(rows: list[list[str]], header: list[str], width: int, shrink: list[int],
        minimum: int = 8, keep_end: frozenset[int] = frozenset()) -> list[list[str]]:
    """`rows` with the cells of the columns `shrink` (most willing first) cut short with '…'
    until `table(rows, header)` is at most `width` characters wide, none below `minimum`. A
    column of `keep_end` loses its start instead ('…/vol1'): mount points that share a long
    prefix differ only at their ends."""
    rows = [list(r) for r in rows]

    def widths() -> list[int]:
        return [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    for col in shrink:
        w = widths()
        excess = sum(w) + 2 * (len(w) - 1) - width
        if excess <= 0:
            break
        target = max(minimum, len(header[col]), w[col] - excess)
        for r in rows:
            if len(r[col]) > target:
                r[col] = "…" + r[col][len(r[col]) - target + 1:] if col in keep_end else r[col][:target - 1] + "…"
    return rows


class Progress:
    """A progress line on a terminal: `progress(phase, done, total)` rewrites one line of
    `stream` (stderr) when it is a terminal and the work has at least `least` steps, at
    most ten times a second; `close()` clears it. Nothing at all when not on a terminal, so
    that logs and pipes get only the command's own output."""

    def __init__(self, stream: object = None, least: int = 50, interval: float = 0.1):
        import sys

        self.stream = stream if stream is not None else sys.stderr
        try:
            self.on = bool(self.stream.isatty())  # type: ignore[attr-defined]
        except (AttributeError, ValueError, OSError):
            self.on = False
        self.least = least
        self.interval = interval
        self.shown = 0.0
        self.dirty = False

    def __call__(self, phase: str, done: int, total: int) -> None:
        import time

        if not self.on or total < self.least:
            return
        now = time.monotonic()
        if done < total and now - self.shown < self.interval:
            return
        self.shown = now
        self.stream.write(f"\r\x1b[K{phase} {done}/{total} exports")  # type: ignore[attr-defined]
        self.stream.flush()  # type: ignore[attr-defined]
        self.dirty = True

    def close(self) -> None:
        if self.dirty:
            self.stream.write("\r\x1b[K")  # type: ignore[attr-defined]
            self.stream.flush()  # type: ignore[attr-defined]
            self.dirty = False

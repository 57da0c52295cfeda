"""Human output shared by the CLI and the lab: aligned, short, no trailing blanks."""
from __future__ import annotations


def table(rows: list[list[str]], header: list[str]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)

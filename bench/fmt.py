"""How bench/RESULTS.md writes a figure: seconds, milliseconds, ratios, a target met or not."""
from __future__ import annotations


def fmt_s(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f} s"


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x * 1000:.0f} ms" if x >= 0.1 else f"{x * 1000:.1f} ms"


def fmt_t(x):
    """seconds, in ms below 1 s"""
    if x is None:
        return "n/a"
    return fmt_ms(x) if x < 1 else fmt_s(x)


def fmt_ratio(a, b):
    if a is None or b is None or b == 0:
        return "n/a"
    r = a / b
    return f"{r:.0f}×" if r >= 10 else f"{r:.1f}×"


def met(ok):
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")

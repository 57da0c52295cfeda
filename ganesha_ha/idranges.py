"""Sets of whole numbers kept as sorted, disjoint, non-adjacent closed ranges (pure).

The registry remembers every Export_Id and numeric fsid a removed export had, so that none
is handed out again (a client's old file handle must never reach another export). Kept
number by number, a volume with 10 000 add/remove cycles would carry 10 000 numbers; ids
are handed out lowest first and retired in the same order, so as ranges they stay one or a
few `[low, high]` pairs. The worst case (every other id retired, only possible with ids
chosen by hand) is bounded by the size of the volume's range.
"""
from __future__ import annotations

from bisect import bisect_right

TYPE_CHECKING = False  # importing typing costs ~3 ms per agent call; type checkers read this as True
if TYPE_CHECKING:
    from collections.abc import Iterable

Ranges = tuple  # tuple[tuple[int, int], ...]: sorted by low, disjoint, never adjacent


def normalise(pairs: Iterable[tuple[int, int]]) -> Ranges:
    """`pairs` (any order, overlapping or adjacent) as Ranges; ValueError for low > high."""
    out: list[list[int]] = []
    for lo, hi in sorted((int(lo), int(hi)) for lo, hi in pairs):
        if lo > hi:
            raise ValueError(f"range {lo}-{hi} is empty")
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


def add(ranges: Ranges, values: Iterable[int]) -> Ranges:
    """`ranges` with `values` added."""
    return normalise(list(ranges) + [(v, v) for v in values])


def contains(ranges: Ranges, value: int) -> bool:
    i = bisect_right(ranges, (value, float("inf"))) - 1
    return i >= 0 and ranges[i][0] <= value <= ranges[i][1]


def next_outside(ranges: Ranges, value: int) -> int:
    """The smallest number >= `value` that is not a member."""
    i = bisect_right(ranges, (value, float("inf"))) - 1
    if i >= 0 and ranges[i][0] <= value <= ranges[i][1]:
        return ranges[i][1] + 1
    return value


def count_within(ranges: Ranges, lo: int, hi: int) -> int:
    """How many members of `ranges` lie within lo..hi."""
    return sum(max(0, min(b, hi) - max(a, lo) + 1) for a, b in ranges)


def text(ranges: Ranges, limit: int = 4) -> str:
    """'3000-3004, 3007' (the first `limit` ranges, then '...')."""
    parts = [f"{a}-{b}" if a != b else str(a) for a, b in ranges[:limit]]
    return ", ".join(parts) + (", ..." if len(ranges) > limit else "")

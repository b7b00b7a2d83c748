"""Which ``seq`` numbers each bin's stored results carry, as ranges (bin-1: 1-9 and 11-40), so the
count of missing results reads a few rows per bin instead of every result it ever sent.

The table holds ranges whose union is the set of distinct numbers stored (above the bin's
``pruned_seq``); rows may overlap or touch (concurrent writers each merge only what they read),
the reader merges. Writers only delete rows whose numbers they insert again, so the union never
loses a number under any interleaving of writers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ecolens.fleet.storage.database import Database

Range = tuple[int, int]


def runs(numbers: Iterable[int]) -> list[Range]:
    """Sorted distinct numbers as consecutive runs: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    out: list[list[int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return [(lo, hi) for lo, hi in out]


def merge(ranges: Iterable[Range]) -> list[Range]:
    """Union of ranges as disjoint, non-touching ranges."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def covered_above(ranges: Iterable[Range], floor: int) -> int:
    """How many distinct numbers above ``floor`` the ranges cover."""
    return sum(hi - max(lo - 1, floor) for lo, hi in merge(ranges) if hi > floor)


def _replace(tx: Database, gone: Sequence[tuple[str, int, int]], new: Sequence[tuple[str, int, int]]) -> None:
    for start in range(0, len(gone), 300):
        chunk = gone[start : start + 300]
        rows = ", ".join(["(?, ?, ?)"] * len(chunk))
        tx.execute(
            f"DELETE FROM seq_ranges WHERE (device_id, first_seq, last_seq) IN (VALUES {rows})",
            [value for row in chunk for value in row],
        )
    for start in range(0, len(new), 300):
        chunk = new[start : start + 300]
        rows = ", ".join(["(?, ?, ?)"] * len(chunk))
        tx.execute(
            f"INSERT INTO seq_ranges (device_id, first_seq, last_seq) VALUES {rows}",
            [value for row in chunk for value in row],
        )


# Extend a stored range that reaches the run's first number, then store the run where no single
# range covers it yet: two statements a batch, no read into Python. A run that would join two
# ranges, or arrives before its neighbour, leaves touching rows that ``compact`` merges.
EXTEND = """UPDATE seq_ranges SET last_seq = CASE WHEN seq_ranges.last_seq < runs.column3
        THEN runs.column3 ELSE seq_ranges.last_seq END
    FROM ({rows}) AS runs
    WHERE seq_ranges.device_id = runs.column1 AND seq_ranges.first_seq <= runs.column2
        AND seq_ranges.last_seq >= runs.column2 - 1"""
INSERT_UNCOVERED = """INSERT INTO seq_ranges (device_id, first_seq, last_seq)
    SELECT runs.column1, runs.column2, runs.column3 FROM ({rows}) AS runs
    WHERE NOT EXISTS (SELECT 1 FROM seq_ranges s WHERE s.device_id = runs.column1
        AND s.first_seq <= runs.column2 AND s.last_seq >= runs.column3)"""
RUN_TYPES = ("text", "bigint", "bigint")


def add(tx: Database, numbers: dict[str, list[int]]) -> None:
    """Record newly stored numbers per bin (inside the caller's transaction), bins in sorted order
    so concurrent writers lock ranges in one order."""
    found = [(device, lo, hi) for device in sorted(numbers) for lo, hi in runs(numbers[device])]
    tx.bulk(EXTEND, found, RUN_TYPES)
    tx.bulk(INSERT_UNCOVERED, found, RUN_TYPES)


def compact(tx: Database) -> int:
    """Merge each bin's touching or overlapping rows into one (the writer, every prune
    interval); returns the rows removed."""
    removed = 0
    fragmented = [row[0] for row in tx.query(
        "SELECT device_id FROM seq_ranges GROUP BY device_id HAVING COUNT(*) > 1"
    )]  # fmt: skip
    for device in fragmented:
        rows = [(int(lo), int(hi)) for lo, hi in tx.query(
            "SELECT first_seq, last_seq FROM seq_ranges WHERE device_id = ?", (device,)
        )]  # fmt: skip
        merged = merge(rows)
        if len(merged) < len(rows):
            _replace(tx, [(device, lo, hi) for lo, hi in set(rows)], [(device, lo, hi) for lo, hi in merged])
            removed += len(rows) - len(merged)
    return removed


def clip(tx: Database, floors: dict[str, int]) -> None:
    """After retention raised bins' ``pruned_seq``: forget numbers at or below it (those results
    are deleted). A bin whose stored results all carry numbers at or below it keeps one marker
    range (floor, floor), so it is still listed, with nothing missing, as the raw count lists it."""
    for device in sorted(floors):
        floor = floors[device]
        rows = tx.query(
            "SELECT first_seq, last_seq FROM seq_ranges WHERE device_id = ? AND first_seq <= ?",
            (device, floor),
        )
        below = [(int(lo), int(hi)) for lo, hi in rows]
        kept = [(device, floor + 1, hi) for lo, hi in below if hi > floor]
        _replace(tx, [(device, lo, hi) for lo, hi in below], kept)
        if kept or tx.query("SELECT 1 FROM seq_ranges WHERE device_id = ? LIMIT 1", (device,)):
            continue
        if tx.query("SELECT 1 FROM results WHERE device_id = ? AND seq IS NOT NULL LIMIT 1", (device,)):
            _replace(tx, [], [(device, floor, floor)])


def rebuild(tx: Database, device_id: str) -> int:
    """Replace one bin's ranges with those of its stored results (the migration); returns the
    number of ranges. Reads the (device_id, seq) index in order."""
    rows = tx.query(
        "SELECT DISTINCT seq FROM results WHERE device_id = ? AND seq IS NOT NULL ORDER BY seq", (device_id,)
    )
    numbers = [int(row[0]) for row in rows]
    old = tx.query("SELECT device_id, first_seq, last_seq FROM seq_ranges WHERE device_id = ?", (device_id,))
    new = [(device_id, lo, hi) for lo, hi in runs(numbers)]
    _replace(tx, [tuple(row) for row in old], new)
    return len(new)

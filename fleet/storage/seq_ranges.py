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
            f"INSERT INTO seq_ranges (device_id, first_seq, last_seq) VALUES {rows} ON CONFLICT DO NOTHING",
            [value for row in chunk for value in row],
        )


def add(tx: Database, numbers: dict[str, list[int]]) -> None:
    """Record newly stored numbers per bin, merged with the stored ranges they touch (inside the
    caller's transaction)."""
    wanted = {device: runs(seqs) for device, seqs in numbers.items() if seqs}
    if not wanted:
        return
    devices = sorted(wanted)
    touching: dict[str, list[Range]] = {device: [] for device in devices}
    for start in range(0, len(devices), 300):
        chunk = devices[start : start + 300]
        where = " OR ".join(["(device_id = ? AND last_seq >= ? AND first_seq <= ?)"] * len(chunk))
        params: list = []
        for device in chunk:
            params += [device, wanted[device][0][0] - 1, wanted[device][-1][1] + 1]
        found = tx.query(f"SELECT device_id, first_seq, last_seq FROM seq_ranges WHERE {where}", params)
        for device, lo, hi in found:
            touching[device].append((int(lo), int(hi)))
    gone: list[tuple[str, int, int]] = []
    new: list[tuple[str, int, int]] = []
    for device in devices:
        old = set(touching[device])
        merged = set(merge([*old, *wanted[device]]))
        gone += [(device, lo, hi) for lo, hi in sorted(old - merged)]
        new += [(device, lo, hi) for lo, hi in sorted(merged - old)]
    _replace(tx, gone, new)


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

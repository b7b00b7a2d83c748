"""Counts per bin, label and model version over a time window, read from rollups: whole UTC days
from the day rollups, whole hours from the hour rollups, and the partial hours at the window's
edges from raw results. So a report costs what its window and fleet cost, however many results
the database holds, and a window need not be aligned to hours.

Raw results serve only those edge hours: once ``keep_results_days`` has deleted them, an edge
hour older than that counts nothing (align such windows to hours; docs/fleet.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.rollups import DAY_MS, HOUR_MS, bucket_sql, ceil_to, floor_to
from ecolens.fleet.timewindow import TimeWindow

RAW = 0  # a piece read from raw results


@dataclass
class Cell:
    """One bin's results of one label and model version in one bucket (0 without buckets)."""

    bucket_ms: int
    device_id: str
    label: str
    model_version: str
    items: int
    uncertain: int
    confidence_sum: float
    last_seen_ms: int


def pieces(since_ms: int, until_ms: int, widths: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """[since, until) as (width, since, until): the coarsest whole buckets first, RAW for what
    is left at the edges. ``widths`` coarsest first, each a multiple of the next."""
    if since_ms >= until_ms:
        return []
    if not widths:
        return [(RAW, since_ms, until_ms)]
    width, finer = widths[0], widths[1:]
    low, high = ceil_to(since_ms, width), floor_to(until_ms, width)
    if low >= high:
        return pieces(since_ms, until_ms, finer)
    return [*pieces(since_ms, low, finer), (width, low, high), *pieces(high, until_ms, finer)]


def widths_for(bucket_ms: int | None) -> tuple[int, ...]:
    """The rollups a bucket can be summed from: a day from days and hours, an hour from hours,
    a minute from raw results only."""
    return tuple(width for width in (DAY_MS, HOUR_MS) if bucket_ms is None or bucket_ms % width == 0)


def _piece_query(width: int, bucket_ms: int | None, device_id: str | None) -> str:
    time_column = "seen_ms" if width == RAW else "bucket_ms"
    bucket = "0" if bucket_ms is None else bucket_sql(time_column, bucket_ms)
    if width == RAW:
        sums = "COUNT(*), SUM(CASE WHEN uncertain THEN 1 ELSE 0 END), SUM(confidence), MAX(seen_ms)"
        where = "seen_ms >= ? AND seen_ms < ?"
        table = "results"
    else:
        sums = "SUM(items), SUM(uncertain), SUM(confidence_sum), MAX(last_seen_ms)"
        where = f"width_ms = {int(width)} AND bucket_ms >= ? AND bucket_ms < ?"
        table = "rollups"
    if device_id is not None:
        where += " AND device_id = ?"
    group = "2, 3, 4" if bucket_ms is None else "1, 2, 3, 4"
    columns = f"{bucket}, device_id, label, model_version, {sums}"
    return f"SELECT {columns} FROM {table} WHERE {where} GROUP BY {group}"


def cells(
    db: Database, window: TimeWindow, bucket_ms: int | None = None, device_id: str | None = None
) -> list[Cell]:
    """Every (bucket, bin, label, model version) of the window with its counts, sorted;
    ``bucket_ms`` None: one cell per bin, label and version over the whole window."""
    merged: dict[tuple[int, str, str, str], Cell] = {}
    for width, since_ms, until_ms in pieces(window.since_ms, window.until_ms, widths_for(bucket_ms)):
        params: list[Any] = [since_ms, until_ms] + ([] if device_id is None else [device_id])
        for row in db.query(_piece_query(width, bucket_ms, device_id), params):
            key = (int(row[0]), row[1], row[2], row[3])
            cell = merged.get(key)
            if cell is None:
                merged[key] = Cell(*key, int(row[4]), int(row[5] or 0), float(row[6] or 0.0), int(row[7]))
            else:
                cell.items += int(row[4])
                cell.uncertain += int(row[5] or 0)
                cell.confidence_sum += float(row[6] or 0.0)
                cell.last_seen_ms = max(cell.last_seen_ms, int(row[7]))
    return [merged[key] for key in sorted(merged)]

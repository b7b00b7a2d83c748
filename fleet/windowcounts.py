"""Counts per bin, label and model version over a time window, read from rollups: whole UTC days
from the day rollups, whole hours from the hour rollups, and the partial hours at the window's
edges from raw results. So a report costs what its window and fleet cost, however many results
the database holds, and a window need not be aligned to hours.

Raw results serve only those edge hours: once ``keep_results_days`` has deleted them, an edge
hour older than that counts nothing (align such windows to hours; docs/fleet.md).
"""

from __future__ import annotations

from typing import Any, cast

from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.rollups import DAY_MS, HOUR_MS, bucket_sql, ceil_to, floor_to
from ecolens.fleet.timewindow import TimeWindow

RAW = 0  # a piece read from raw results


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


def _piece(width: int, bucket_ms: int | None, device_id: str | None) -> str:
    """One piece's counts per (bucket, bin, label, model version)."""
    time_column = "seen_ms" if width == RAW else "bucket_ms"
    bucket = "0" if bucket_ms is None else bucket_sql(time_column, bucket_ms)
    if width == RAW:
        sums = (
            "COUNT(*) AS items, SUM(CASE WHEN uncertain THEN 1 ELSE 0 END) AS uncertain, MAX(seen_ms) AS last"
        )
        where = "seen_ms >= ? AND seen_ms < ?"
        table = "results"
    else:  # rollup rows pass through: the outer query groups them once
        sums = "items, uncertain, last_seen_ms AS last"
        where = f"width_ms = {int(width)} AND bucket_ms >= ? AND bucket_ms < ?"
        table = "rollups"
    if device_id is not None:
        where += " AND device_id = ?"
    group = "device_id, label, model_version" if bucket_ms is None else "1, device_id, label, model_version"
    columns = f"{bucket} AS bucket, device_id, label, model_version, {sums}"
    grouped = f" GROUP BY {group}" if width == RAW else ""
    return f"SELECT {columns} FROM {table} WHERE {where}{grouped}"


def union(window: TimeWindow, bucket_ms: int | None, device_id: str | None) -> tuple[str, list[Any]]:
    """The window's pieces as one UNION ALL subquery (columns bucket, device_id, label,
    model_version, items, uncertain, last) and its parameters; ``bucket_ms`` None: bucket 0."""
    parts, params = [], []
    for width, since_ms, until_ms in pieces(window.since_ms, window.until_ms, widths_for(bucket_ms)):
        parts.append(_piece(width, bucket_ms, device_id))
        params += [since_ms, until_ms] + ([] if device_id is None else [device_id])
    return " UNION ALL ".join(parts), params


def per_bin(
    db: Database, window: TimeWindow, device_id: str | None = None
) -> list[tuple[str, str, str, int, int, int]]:
    """(device_id, label, model_version, items, uncertain, newest seen_ms) over the window."""
    sql, params = union(window, None, device_id)
    rows = db.query(
        f"""SELECT device_id, label, model_version, CAST(SUM(items) AS BIGINT),
                   CAST(SUM(uncertain) AS BIGINT), MAX(last)
            FROM ({sql}) AS pieces GROUP BY device_id, label, model_version
            ORDER BY device_id, label, model_version""",
        params,
    )
    return [(r[0], r[1], r[2], int(r[3]), int(r[4] or 0), int(r[5])) for r in rows]


def per_bucket(
    db: Database, window: TimeWindow, bucket_ms: int, plastic_label: str, device_id: str | None = None
) -> list[tuple[int, str, int, int]]:
    """(bucket start, device_id, items, plastic) per bucket and bin, sorted."""
    sql, params = union(window, bucket_ms, device_id)
    rows = db.query(
        f"""SELECT bucket, device_id, CAST(SUM(items) AS BIGINT),
                   CAST(SUM(CASE WHEN label = ? THEN items ELSE 0 END) AS BIGINT)
            FROM ({sql}) AS pieces GROUP BY bucket, device_id ORDER BY bucket, device_id""",
        [plastic_label, *params],
    )
    # already integers in both databases (the CASTs; bucket_sql of BIGINT columns): no copy of
    # 15,500 rows to convert them
    return cast(list[tuple[int, str, int, int]], rows)

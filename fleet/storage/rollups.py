"""Rollups: per bin, hour (and day), label and model version, the counts every report reads
instead of raw results, so that a report costs what its window and fleet cost, not what years of
results cost. Kept at ingest in the results' own transaction (only rows that were really
inserted are added: exactly-once holds for them too) and rebuilt from raw results by the
migration and ``ecolens rollups build``.

Buckets are floored epoch milliseconds (``bucket_sql`` is the one definition SQL uses, matching
Python's ``//``), so hours and days are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from ecolens.fleet.storage.database import Database

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WIDTHS_MS = (HOUR_MS, DAY_MS)

COLUMNS = (
    "width_ms, bucket_ms, device_id, label, model_version, items, uncertain, confidence_sum, last_seen_ms"
)

# SELECT ... WHERE true: SQLite's grammar needs a WHERE before an upsert's ON CONFLICT
UPSERT = f"""INSERT INTO rollups ({COLUMNS}) SELECT * FROM ({{rows}}) AS cells WHERE true
    ON CONFLICT (width_ms, bucket_ms, device_id, label, model_version) DO UPDATE SET
        items = rollups.items + excluded.items,
        uncertain = rollups.uncertain + excluded.uncertain,
        confidence_sum = rollups.confidence_sum + excluded.confidence_sum,
        last_seen_ms = CASE WHEN excluded.last_seen_ms > rollups.last_seen_ms
            THEN excluded.last_seen_ms ELSE rollups.last_seen_ms END"""
TYPES = ("bigint", "bigint", "text", "text", "text", "bigint", "bigint", "float8", "bigint")


class NewResult(NamedTuple):
    """What the results insert returns for each row it really stored (RETURNING)."""

    device_id: str
    seen_ms: int
    label: str
    uncertain: bool
    confidence: float
    model_version: str
    seq: int | None


def floor_to(moment_ms: int, width_ms: int) -> int:
    return moment_ms - moment_ms % width_ms


def ceil_to(moment_ms: int, width_ms: int) -> int:
    return -floor_to(-moment_ms, width_ms)


def bucket_sql(column: str, width_ms: int) -> str:
    """``column`` floored to ``width_ms`` in SQL (``%`` truncates in both databases; this floors,
    like Python, so times before 1970 land in the same bucket at ingest and in a rebuild)."""
    width = int(width_ms)
    return f"({column} - (({column} % {width}) + {width}) % {width})"


def upsert_cells(tx: Database, cells: dict[tuple, list]) -> None:
    """Add cells {(width, bucket, device, label, version): [items, uncertain, conf_sum, last_seen]}
    in sorted key order: concurrent writers lock rollup rows in one order, so never deadlock."""
    tx.bulk(UPSERT, [(*key, *cells[key]) for key in sorted(cells)], TYPES)


def add_results(tx: Database, rows: Iterable[NewResult]) -> None:
    """Add newly stored results to the hour and day rollups (inside the caller's transaction)."""
    cells: dict[tuple, list] = {}
    for row in rows:
        uncertain = 1 if row.uncertain else 0
        for width in WIDTHS_MS:
            key = (width, floor_to(row.seen_ms, width), row.device_id, row.label, row.model_version)
            cell = cells.get(key)
            if cell is None:
                cells[key] = [1, uncertain, float(row.confidence), row.seen_ms]
            else:
                cell[0] += 1
                cell[1] += uncertain
                cell[2] += float(row.confidence)
                cell[3] = max(cell[3], row.seen_ms)
    upsert_cells(tx, cells)


def _cells_of(source: str) -> str:
    """SQL: the hour and day cells of the rows in ``source`` (device_id, seen_ms, label, uncertain,
    confidence, model_version), in key order (concurrent writers lock rollup rows in one order)."""
    per_width = [
        f"""SELECT CAST({width} AS BIGINT), {bucket_sql("seen_ms", width)}, device_id, label, model_version,
                COUNT(*), SUM(CASE WHEN uncertain THEN 1 ELSE 0 END), SUM(confidence), MAX(seen_ms)
            FROM {source} GROUP BY 2, 3, 4, 5"""
        for width in WIDTHS_MS
    ]
    return f"SELECT * FROM ({' UNION ALL '.join(per_width)}) AS cells_of ORDER BY 1, 2, 3, 4, 5"


def insert_and_add(insert_returning: str) -> str:
    """PostgreSQL: one statement that stores a batch's results (``insert_returning``, an INSERT
    ... RETURNING device_id, seen_ms, label, uncertain, confidence, model_version, seq) and adds
    exactly the rows it stored to the hour and day rollups, aggregated by the server; it returns
    (device_id, seq) of each stored row. The rows never travel to Python and back, nor are cells
    counted there: that was most of what rollups cost the aggregator's writer."""
    add = UPSERT.replace("{rows}", _cells_of("new_rows_stored"))
    return f"""WITH new_rows_stored AS ({insert_returning}), added AS ({add})
        SELECT device_id, seq FROM new_rows_stored"""


def lock_for_rebuild(tx: Database) -> None:
    """PostgreSQL: writers that add to rollups wait while a rebuild replaces rows, and a rebuild
    waits for writers in flight, so each result is counted once whatever the interleaving.
    SQLite: BEGIN IMMEDIATE already serialises writers."""
    if tx.kind == "postgresql":
        tx.execute("LOCK TABLE rollups IN SHARE ROW EXCLUSIVE MODE")


def rebuild_days(tx: Database, first_day_ms: int, end_day_ms: int) -> int:
    """Replace the hour and day rollups of the whole UTC days [first, end) with a recomputation
    from raw results (inside the caller's transaction); returns the results counted. Only
    meaningful where raw results of those days are all still stored."""
    lock_for_rebuild(tx)
    tx.execute(
        "DELETE FROM rollups WHERE bucket_ms >= ? AND bucket_ms < ?",
        (first_day_ms, end_day_ms),
    )
    tx.execute(
        f"""INSERT INTO rollups ({COLUMNS})
            SELECT {HOUR_MS}, {bucket_sql("seen_ms", HOUR_MS)}, device_id, label, model_version,
                   COUNT(*), SUM(CASE WHEN uncertain THEN 1 ELSE 0 END), SUM(confidence), MAX(seen_ms)
            FROM results WHERE seen_ms >= ? AND seen_ms < ?
            GROUP BY 2, 3, 4, 5""",
        (first_day_ms, end_day_ms),
    )
    tx.execute(
        f"""INSERT INTO rollups ({COLUMNS})
            SELECT {DAY_MS}, {bucket_sql("bucket_ms", DAY_MS)}, device_id, label, model_version,
                   SUM(items), SUM(uncertain), SUM(confidence_sum), MAX(last_seen_ms)
            FROM rollups WHERE width_ms = {HOUR_MS} AND bucket_ms >= ? AND bucket_ms < ?
            GROUP BY 2, 3, 4, 5""",
        (first_day_ms, end_day_ms),
    )
    rows = tx.query(
        "SELECT COALESCE(SUM(items), 0) FROM rollups WHERE width_ms = ? AND bucket_ms >= ? AND bucket_ms < ?",
        (DAY_MS, first_day_ms, end_day_ms),
    )
    return int(rows[0][0])


def stored_rows(rows: Sequence[Sequence]) -> list[NewResult]:
    """RETURNING rows as NewResult (SQLite gives 0/1 for booleans)."""
    return [NewResult(r[0], int(r[1]), r[2], bool(r[3]), float(r[4]), r[5], r[6]) for r in rows]

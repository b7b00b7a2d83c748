"""PostgreSQL only: raw results partitioned by ``seen_ms`` into weeks (native declarative
partitioning), so that retention drops a week's partition instead of deleting its rows one by
one, and a week's rows sit together on disk. SQLite keeps one plain table.

The dedup key is (event_id, seen_ms): a partitioned table's unique keys must hold the partition
key, and a redelivery is the same payload, so the same ``seen_ms`` (docs/fleet.md). Rows outside
every week (a bin's clock years off) go to ``results_default``.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timezone

from ecolens.fleet.storage.database import Database

log = logging.getLogger(__name__)

WEEK_MS = 7 * 86_400_000
WEEKS_AHEAD = 2  # partitions exist this far ahead of now, so ingest never waits for one
MAX_WEEKS_BACK = 260  # older rows (five years) go to the default partition
_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


def is_partitioned(db: Database, table: str = "results") -> bool:
    """True for a PostgreSQL partitioned table (never on SQLite)."""
    if db.kind != "postgresql":
        return False
    rows = db.query(
        "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(?)",
        (table,),
    )
    return bool(rows) and rows[0][0] == "p"


def week_start(moment_ms: int) -> int:
    return moment_ms - moment_ms % WEEK_MS


def partition_name(parent: str, start_ms: int) -> str:
    day = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    return f"{parent}_{day:%Y%m%d}"


def partitions(db: Database, parent: str = "results") -> list[tuple[str, int, int]]:
    """(name, from_ms, to_ms) of each week partition, oldest first (the default one left out)."""
    rows = db.query(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass(?)""",
        (parent,),
    )
    found = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match:
            found.append((name, int(match.group(1)), int(match.group(2))))
    return sorted(found, key=lambda part: part[1])


def create_partitioned(db: Database, name: str, like: str) -> None:
    """An empty partitioned copy of ``like``'s columns (and CHECK constraints), with its default
    partition; keys and indexes come after the rows (``add_keys``)."""
    db.execute(
        f"CREATE TABLE {name} (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        "PARTITION BY RANGE (seen_ms)"
    )
    db.execute(f"CREATE TABLE {name}_default PARTITION OF {name} DEFAULT")


def add_keys(db: Database, table: str = "results") -> None:
    """The dedup key and the indexes of the plain table, on every partition at once."""
    db.execute(f"ALTER TABLE {table} ADD CONSTRAINT results_key PRIMARY KEY (event_id, seen_ms)")
    db.execute(
        f"CREATE INDEX results_window ON {table} (seen_ms, device_id, label, uncertain, model_version)"
    )
    db.execute(f"CREATE INDEX results_device_seen ON {table} (device_id, seen_ms)")
    db.execute(f"CREATE INDEX results_device_seq ON {table} (device_id, seq)")


def ensure(db: Database, from_ms: int, to_ms: int, parent: str = "results") -> int:
    """Create the week partitions covering [from_ms, to_ms) that are missing; returns how many.
    A week whose rows already sit in the default partition is left there (creating its
    partition would fail): retention deletes them row by row."""
    first = max(week_start(from_ms), week_start(to_ms) - MAX_WEEKS_BACK * WEEK_MS)
    existing = {start for _, start, _ in partitions(db, parent)}
    created = 0
    for start in range(first, to_ms, WEEK_MS):
        if start in existing:
            continue
        end = start + WEEK_MS
        if db.query(
            f"SELECT 1 FROM {parent}_default WHERE seen_ms >= ? AND seen_ms < ? LIMIT 1", (start, end)
        ):
            log.info("results of the week %s stay in the default partition", partition_name(parent, start))
            continue
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {partition_name(parent, start)} PARTITION OF {parent} "
            f"FOR VALUES FROM ({start}) TO ({start + WEEK_MS})"
        )
        created += 1
    return created


def ensure_around(db: Database, now_ms: int) -> int:
    """The current week's partition and WEEKS_AHEAD more (called at every prune interval)."""
    return ensure(db, now_ms - WEEK_MS, now_ms + (WEEKS_AHEAD + 1) * WEEK_MS)


def drop_before(tx: Database, cutoff_ms: int) -> tuple[dict[str, int], int]:
    """Drop the week partitions that end at or before ``cutoff_ms`` (inside the caller's
    transaction); returns each bin's highest ``seq`` dropped and how many results went."""
    floors: dict[str, int] = {}
    dropped = 0
    for name, _, end_ms in partitions(tx):
        if end_ms > cutoff_ms:
            break
        per_bin = tx.query(f"SELECT device_id, MAX(seq), COUNT(*) FROM {name} GROUP BY device_id")
        for device, top, count in per_bin:
            dropped += int(count)
            if top is not None:
                floors[device] = max(floors.get(device, int(top)), int(top))
        tx.execute(f"DROP TABLE {name}")
    return floors, dropped

"""The upgrade's batched jobs (schema 11), too big for the schema transaction on a database that
already holds years of results: PostgreSQL's plain ``results`` becomes a partitioned table (rows
copied week by week, then swapped in), then the rollups and seq ranges are built from the stored
results, a day (or 200 bins) per transaction. Each batch commits its progress in ``fleet_jobs``,
so a crash or Ctrl-C resumes where it stopped; progress lines go to stderr.

Stop every aggregator before upgrading: the first ``ecolens aggregate`` (or ``report``) to start
runs the jobs, the others wait (PostgreSQL: advisory lock) or help (SQLite: batch by batch).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ecolens.fleet.storage import partitions, rollups, seq_ranges
from ecolens.fleet.storage.database import Database

JOBS_LOCK = 4242052
DEVICES_PER_BATCH = 200
Progress = Callable[[str], None]


def to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Throttled:
    """At most one progress line every ``every_s`` seconds, and always the last one."""

    def __init__(self, progress: Progress, every_s: float = 2.0) -> None:
        self.progress, self.every_s, self.last = progress, every_s, 0.0

    def __call__(self, line: str, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self.last >= self.every_s:
            self.last = now
            self.progress(line)


def _state(tx: Database, name: str) -> tuple | None:
    rows = tx.query("SELECT next_ms, until_ms, next_key, done, total FROM fleet_jobs WHERE name = ?", (name,))
    return tuple(rows[0]) if rows else None


def _save(tx: Database, name: str, next_ms: int | None, until_ms: int | None, next_key: str | None,
          done: int, total: int) -> None:  # fmt: skip
    tx.execute(
        "UPDATE fleet_jobs SET next_ms = ?, until_ms = ?, next_key = ?, done = ?, total = ? WHERE name = ?",
        (next_ms, until_ms, next_key, done, total, name),
    )


def _finish(tx: Database, name: str) -> None:
    tx.execute("DELETE FROM fleet_jobs WHERE name = ?", (name,))


def _next_start(tx: Database, table: str, after_ms: int, width_ms: int, until_ms: int) -> int:
    """The start of the next ``width_ms`` span holding a row at or after ``after_ms`` (skips
    empty years a bad clock left between rows)."""
    rows = tx.query(f"SELECT MIN(seen_ms) FROM {table} WHERE seen_ms >= ?", (after_ms,))
    return until_ms if rows[0][0] is None else max(after_ms, rollups.floor_to(int(rows[0][0]), width_ms))


# -- PostgreSQL: partition the results ------------------------------------------------------------
def _start_partitioning(tx: Database) -> tuple[int, int, int]:
    """The partitioned table, its weeks from the oldest row to a few weeks ahead; (from, until, rows)."""
    low, high, total = tx.query("SELECT MIN(seen_ms), MAX(seen_ms), COUNT(*) FROM results")[0]
    now_ms = int(time.time() * 1000)
    if not partitions.is_partitioned(tx, "results_partitioned"):
        partitions.create_partitioned(tx, "results_partitioned", "results")
    first = now_ms if low is None else int(low)
    ahead_ms = now_ms + (partitions.WEEKS_AHEAD + 1) * partitions.WEEK_MS
    partitions.ensure(tx, first, ahead_ms, "results_partitioned")
    return (0, 0, 0) if low is None else (int(low), int(high) + 1, int(total))


def _swap_partitioned(tx: Database, copied: int) -> None:
    """Replace the plain table by the partitioned copy, under an exclusive lock."""
    tx.execute("LOCK TABLE results IN ACCESS EXCLUSIVE MODE")
    if tx.query("SELECT COUNT(*) FROM results")[0][0] != copied:
        # rows stored meanwhile by an aggregator that should have been stopped: copy them too
        tx.execute(
            """INSERT INTO results_partitioned SELECT r.* FROM results r WHERE NOT EXISTS (
                SELECT 1 FROM results_partitioned p
                WHERE p.event_id = r.event_id AND p.seen_ms = r.seen_ms)"""
        )
    tx.execute("DROP TABLE results")
    tx.execute("ALTER TABLE results_partitioned RENAME TO results")
    tx.execute("ALTER TABLE results_partitioned_default RENAME TO results_default")
    for part, start, _ in partitions.partitions(tx, "results"):
        tx.execute(f"ALTER TABLE {part} RENAME TO {partitions.partition_name('results', start)}")
    partitions.add_keys(tx, "results")


def partition_results(db: Database, progress: _Throttled) -> None:
    """Copy the plain table's rows week by week into a partitioned one, then swap them."""
    name = "partition_results"
    while True:
        with db.transaction() as tx:
            state = _state(tx, name)
            if state is None:
                return
            if tx.kind != "postgresql" or partitions.is_partitioned(tx, "results"):
                _finish(tx, name)
                return
            next_ms, until_ms, _, done, total = state
            if next_ms is None:
                next_ms, until_ms, total = _start_partitioning(tx)
            if next_ms >= until_ms:
                if total:
                    progress(f"partitioning results: building the key and indexes of {total:,} rows", True)
                _swap_partitioned(tx, done)
                _finish(tx, name)
                return
            end = next_ms + partitions.WEEK_MS - next_ms % partitions.WEEK_MS
            done += tx.execute(
                "INSERT INTO results_partitioned SELECT * FROM results WHERE seen_ms >= ? AND seen_ms < ?",
                (next_ms, end),
            )
            _save(tx, name, _next_start(tx, "results", end, 1, until_ms), until_ms, None, done, total)
        progress(f"partitioning results: {done:,} of {total:,} rows copied")


# -- rollups and seq ranges from the stored results -------------------------------------------
def build_rollups(db: Database, progress: _Throttled) -> None:
    """Rebuild the rollups of every day holding results, a day per transaction."""
    name = "build_rollups"
    while True:
        with db.transaction() as tx:
            state = _state(tx, name)
            if state is None:
                return
            next_ms, until_ms, _, done, total = state
            if next_ms is None:
                low, high, total = tx.query("SELECT MIN(seen_ms), MAX(seen_ms), COUNT(*) FROM results")[0]
                next_ms = until_ms = 0
                if low is not None:
                    next_ms = rollups.floor_to(int(low), rollups.DAY_MS)
                    until_ms = rollups.floor_to(int(high), rollups.DAY_MS) + rollups.DAY_MS
            if next_ms >= until_ms:
                _finish(tx, name)
                if total:
                    progress(f"building rollups: {total:,} results done", True)
                return
            done += rollups.rebuild_days(tx, next_ms, next_ms + rollups.DAY_MS)
            following = _next_start(tx, "results", next_ms + rollups.DAY_MS, rollups.DAY_MS, until_ms)
            _save(tx, name, following, until_ms, None, done, int(total))
        progress(f"building rollups: {done:,} of {total:,} results ({100 * done // max(int(total), 1)} %)")


def build_seq_ranges(db: Database, progress: _Throttled) -> None:
    name = "build_seq_ranges"
    while True:
        with db.transaction() as tx:
            state = _state(tx, name)
            if state is None:
                return
            after, done = state[2] or "", int(state[3])
            devices = [row[0] for row in tx.query(
                "SELECT device_id FROM devices WHERE device_id > ? ORDER BY device_id LIMIT ?",
                (after, DEVICES_PER_BATCH),
            )]  # fmt: skip
            if not devices:
                _finish(tx, name)
                return
            ranges = sum(seq_ranges.rebuild(tx, device) for device in devices)
            total = int(state[4]) or int(tx.query("SELECT COUNT(*) FROM devices")[0][0])
            _save(tx, name, None, None, devices[-1], done + len(devices), total)
        if ranges:
            progress(f"building seq ranges: {done + len(devices):,} of {total:,} bins")


JOBS: tuple[Callable[[Database, _Throttled], None], ...] = (
    partition_results,
    build_rollups,
    build_seq_ranges,
)


def run_pending(db: Database, progress: Progress | None = None) -> None:
    """Run what an upgrade left to do; nothing (one cheap query) once done. The caller
    (schema.migrate) runs it only once the schema has the fleet_jobs table."""
    if not db.query("SELECT 1 FROM fleet_jobs LIMIT 1"):
        return
    throttled = _Throttled(progress or to_stderr)
    if db.kind == "postgresql":
        db.execute("SELECT pg_advisory_lock(?)", (JOBS_LOCK,))
    try:
        for job in JOBS:
            job(db, throttled)
    finally:
        if db.kind == "postgresql":
            db.execute("SELECT pg_advisory_unlock(?)", (JOBS_LOCK,))

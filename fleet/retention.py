"""Bounded growth of the fleet database over the years. Refused messages (each keeps up to 4 KiB
of what was sent) and status events are what anyone on the broker can make grow: a bin looping
on a bad message, or a client flooding garbage, would otherwise fill the fleet server's disk,
and with it the results. Results are kept forever unless ``keep_results_days`` is set; then each
bin's highest deleted ``seq`` is recorded (``devices.pruned_seq``), so the count of missing
results does not report deleted ones as lost. Rollups are never pruned: a year of history costs
rollup rows only (docs/fleet.md lists their size).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecolens.fleet.storage import partitions, seq_ranges
from ecolens.fleet.storage.database import Database

DAY_MS = 86_400_000
PRUNED_BEFORE = "results_pruned_before"  # fleet_marks: results seen before this may be deleted


def pruned_before(db: Database) -> int | None:
    """The latest cutoff retention applied: before it, raw results are (partly) gone."""
    rows = db.query("SELECT at_ms FROM fleet_marks WHERE name = ?", (PRUNED_BEFORE,))
    return int(rows[0][0]) if rows else None


@dataclass(frozen=True)
class Pruned:
    rejected: int
    status_events: int
    results: int = 0


def days_ms(days: float) -> int:
    """``days`` in milliseconds, rounded: int() of 13.999999999 days' float product dropped a
    millisecond and pruned the result seen exactly at the cutoff (seen in a CI run)."""
    return round(days * DAY_MS)


def prune(
    db: Database,
    now_ms: int,
    keep_rejected_days: float,
    max_rejected_rows: int,
    keep_status_days: float,
    keep_results_days: float = 0.0,
) -> Pruned:
    """Delete refused messages older than ``keep_rejected_days`` or beyond the newest
    ``max_rejected_rows``, status events older than ``keep_status_days``, and (when
    ``keep_results_days`` > 0) results seen before then; one transaction."""
    with db.transaction() as tx:
        if partitions.is_partitioned(tx):
            partitions.ensure_around(tx, now_ms)
        results = prune_results(tx, now_ms - days_ms(keep_results_days)) if keep_results_days > 0 else 0
        rejected = tx.execute(
            "DELETE FROM rejected WHERE received_ms < ?", (now_ms - days_ms(keep_rejected_days),)
        )
        # the newest row beyond the cap: it and every older row go
        beyond = tx.query(
            "SELECT received_ms FROM rejected ORDER BY received_ms DESC LIMIT 1 OFFSET ?",
            (max_rejected_rows,),
        )
        if beyond:
            rejected += tx.execute("DELETE FROM rejected WHERE received_ms <= ?", (beyond[0][0],))
        status_events = tx.execute(
            "DELETE FROM status_events WHERE at_ms < ?", (now_ms - days_ms(keep_status_days),)
        )
        seq_ranges.compact(tx)
    return Pruned(rejected, status_events, results)


def prune_results(tx: Database, cutoff_ms: int) -> int:
    """Delete results seen before ``cutoff_ms`` (PostgreSQL: whole week partitions are dropped,
    the rest deleted), first raising each bin's ``pruned_seq`` to the highest number deleted, and
    forget those numbers in the seq ranges (inside the caller's transaction). Rollups stay."""
    floors, deleted = partitions.drop_before(tx, cutoff_ms) if partitions.is_partitioned(tx) else ({}, 0)
    for device, top in tx.query(
        """SELECT device_id, MAX(seq) FROM results
           WHERE seen_ms < ? AND seq IS NOT NULL GROUP BY device_id""",
        (cutoff_ms,),
    ):
        floors[device] = max(floors.get(device, int(top)), int(top))
    tx.executemany(
        """UPDATE devices SET pruned_seq = ?
           WHERE device_id = ? AND (pruned_seq IS NULL OR pruned_seq < ?)""",
        [(top, device, top) for device, top in sorted(floors.items())],
    )
    deleted += tx.execute("DELETE FROM results WHERE seen_ms < ?", (cutoff_ms,))
    tx.execute(
        """INSERT INTO fleet_marks (name, at_ms) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET at_ms =
           CASE WHEN excluded.at_ms > fleet_marks.at_ms THEN excluded.at_ms ELSE fleet_marks.at_ms END""",
        (PRUNED_BEFORE, cutoff_ms),
    )
    current = dict(tx.query("SELECT device_id, pruned_seq FROM devices WHERE pruned_seq IS NOT NULL"))
    seq_ranges.clip(tx, {device: int(current[device]) for device in floors if device in current})
    return deleted

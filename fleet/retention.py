"""Bounded growth of the fleet database over the years. Refused messages (each keeps up to 4 KiB
of what was sent) and status events are what anyone on the broker can make grow: a bin looping
on a bad message, or a client flooding garbage, would otherwise fill the fleet server's disk,
and with it the results. Results are kept forever unless ``keep_results_days`` is set; then each
bin's highest deleted ``seq`` is recorded (``devices.pruned_seq``), so the count of missing
results does not report deleted ones as lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecolens.fleet.storage.database import Database

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Pruned:
    rejected: int
    status_events: int
    results: int = 0


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
        results = prune_results(tx, now_ms - int(keep_results_days * DAY_MS)) if keep_results_days > 0 else 0
        rejected = tx.execute(
            "DELETE FROM rejected WHERE received_ms < ?", (now_ms - int(keep_rejected_days * DAY_MS),)
        )
        # the newest row beyond the cap: it and every older row go
        beyond = tx.query(
            "SELECT received_ms FROM rejected ORDER BY received_ms DESC LIMIT 1 OFFSET ?",
            (max_rejected_rows,),
        )
        if beyond:
            rejected += tx.execute("DELETE FROM rejected WHERE received_ms <= ?", (beyond[0][0],))
        status_events = tx.execute(
            "DELETE FROM status_events WHERE at_ms < ?", (now_ms - int(keep_status_days * DAY_MS),)
        )
    return Pruned(rejected, status_events, results)


def prune_results(tx: Database, cutoff_ms: int) -> int:
    """Delete results seen before ``cutoff_ms``, first raising each bin's ``pruned_seq`` to the
    highest number deleted (inside the caller's transaction)."""
    floors = tx.query(
        """SELECT device_id, MAX(seq) FROM results
           WHERE seen_ms < ? AND seq IS NOT NULL GROUP BY device_id""",
        (cutoff_ms,),
    )
    tx.executemany(
        """UPDATE devices SET pruned_seq = ?
           WHERE device_id = ? AND (pruned_seq IS NULL OR pruned_seq < ?)""",
        [(int(top), device, int(top)) for device, top in floors],
    )
    return tx.execute("DELETE FROM results WHERE seen_ms < ?", (cutoff_ms,))

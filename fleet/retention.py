"""Bounded growth of the tables that anyone on the broker can make grow: refused messages (each
keeps up to 4 KiB of what was sent) and status events. A bin looping on a bad message, or a
client flooding garbage, would otherwise fill the fleet server's disk over the years, and with
it the results. Results themselves are kept: the per-bin count of missing results reads every
``seq`` from 1, so deleting old results would report them as lost (docs/fleet.md, Data model).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecolens.fleet.storage.database import Database

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Pruned:
    rejected: int
    status_events: int


def prune(
    db: Database, now_ms: int, keep_rejected_days: float, max_rejected_rows: int, keep_status_days: float
) -> Pruned:
    """Delete refused messages older than ``keep_rejected_days`` or beyond the newest
    ``max_rejected_rows``, and status events older than ``keep_status_days``; one transaction."""
    with db.transaction() as tx:
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
    return Pruned(rejected, status_events)

"""Each bin's latest stats, one row per bin: written by the aggregator beside its result batches
(never in their transaction, never acknowledged: stats arrive at QoS 0 and the next one replaces
this one), read by the report, the dashboard and /metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecolens.fleet.storage.database import Database

# the figures kept, in column order (names as the daemon's stats payload has them)
FIELDS = ("uptime_s", "inference_ms_p95", "queue_depth", "queue_dropped", "cpu_percent", "rss_mb", "fps")


@dataclass(frozen=True)
class BinStats:
    """One bin's stats message, validated; None where the bin did not send a figure."""

    device_id: str
    received_ms: int
    uptime_s: float | None = None
    inference_ms_p95: float | None = None
    queue_depth: int | None = None
    queue_dropped: int | None = None
    cpu_percent: float | None = None
    rss_mb: float | None = None
    fps: float | None = None
    previous_queue_depth: int | None = None  # filled when read back: the depth before this one

    def row(self) -> tuple:
        return (self.device_id, self.received_ms, *(getattr(self, name) for name in FIELDS))


# A newer message replaces the row and moves its queue depth to previous_queue_depth; an older
# one (reordered delivery) changes nothing.
UPSERT_STATS = f"""INSERT INTO bin_stats (device_id, received_ms, {", ".join(FIELDS)})
    VALUES (?, ?, {", ".join("?" for _ in FIELDS)})
    ON CONFLICT (device_id) DO UPDATE SET
        previous_queue_depth = bin_stats.queue_depth,
        received_ms = excluded.received_ms,
        {", ".join(f"{name} = excluded.{name}" for name in FIELDS)}
    WHERE excluded.received_ms >= bin_stats.received_ms"""


def write_stats(database: Database, latest: Sequence[BinStats]) -> None:
    """One short transaction for the bins' newest stats, in device order (no deadlocks between
    aggregators writing the same rows)."""
    with database.transaction() as db:
        db.executemany(UPSERT_STATS, [s.row() for s in sorted(latest, key=lambda s: s.device_id)])


def read_stats(database: Database, device_id: str | None = None) -> dict[str, BinStats]:
    """Every bin's latest stats (or one bin's), by device id."""
    where, params = ("WHERE device_id = ?", (device_id,)) if device_id is not None else ("", ())
    rows = database.query(
        f"SELECT device_id, received_ms, {', '.join(FIELDS)}, previous_queue_depth FROM bin_stats {where}",
        params,
    )
    found = {}
    for row in rows:
        figures = dict(zip(FIELDS, row[2 : 2 + len(FIELDS)]))
        found[row[0]] = BinStats(row[0], int(row[1]), **figures, previous_queue_depth=row[-1])
    return found

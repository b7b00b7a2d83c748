"""Writes what the subscriber received, one transaction per batch, idempotently: a result
redelivered by the broker (same event_id) is kept once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

from ecolens.fleet.storage.database import Database


@dataclass(frozen=True)
class StoredResult:
    """One valid result, flattened for queries; ``payload`` keeps the original JSON."""

    event_id: str
    device_id: str
    seen_ms: int
    received_ms: int
    label: str
    confidence: float
    uncertain: bool
    inference_ms: float
    frames: int | None
    model_name: str
    model_version: str
    model_sha256: str
    payload: str


@dataclass(frozen=True)
class StatusUpdate:
    """A bin's retained ``online`` / ``offline`` (its last will)."""

    device_id: str
    status: str
    at_ms: int


@dataclass(frozen=True)
class Rejected:
    """A message that is not a valid result or status: kept for inspection, never retried."""

    received_ms: int
    topic: str
    reason: str
    payload: str


@dataclass(frozen=True)
class WriteOutcome:
    stored: int
    duplicates: int
    statuses: int
    rejected: int


INSERT_RESULT = """INSERT INTO results (event_id, device_id, seen_ms, received_ms, label,
    confidence, uncertain, inference_ms, frames, model_name, model_version, model_sha256, payload)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING"""

UPSERT_LAST_RESULT = """INSERT INTO devices (device_id, last_result_ms) VALUES (?, ?)
    ON CONFLICT (device_id) DO UPDATE SET last_result_ms = CASE
        WHEN devices.last_result_ms IS NULL OR excluded.last_result_ms > devices.last_result_ms
        THEN excluded.last_result_ms ELSE devices.last_result_ms END"""

# A retained status delivered again (aggregator restart) keeps the time it first changed.
UPSERT_STATUS = """INSERT INTO devices (device_id, status, status_ms) VALUES (?, ?, ?)
    ON CONFLICT (device_id) DO UPDATE SET
        status_ms = CASE WHEN devices.status = excluded.status AND devices.status_ms IS NOT NULL
            THEN devices.status_ms ELSE excluded.status_ms END,
        status = excluded.status"""

INSERT_REJECTED = "INSERT INTO rejected (received_ms, topic, reason, payload) VALUES (?, ?, ?, ?)"


class ResultStore:
    """Batch writer over a Database (SQLite or PostgreSQL, same statements)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def write(
        self,
        results: Sequence[StoredResult] = (),
        statuses: Sequence[StatusUpdate] = (),
        rejected: Sequence[Rejected] = (),
    ) -> WriteOutcome:
        """Everything in one transaction: when this returns, it is committed."""
        last_result: dict[str, int] = {}
        for result in results:
            last_result[result.device_id] = max(
                last_result.get(result.device_id, 0), result.seen_ms
            )
        latest_status: dict[str, StatusUpdate] = {}
        for status in statuses:
            latest_status[status.device_id] = status  # arrival order: the last one wins
        stored = 0
        with self.database.transaction() as db:
            # ON CONFLICT DO NOTHING: the row count is the number of new event ids.
            stored = db.executemany(INSERT_RESULT, [astuple(r) for r in results])
            # Sorted keys: concurrent aggregators lock device rows in the same order.
            db.executemany(UPSERT_LAST_RESULT, sorted(last_result.items()))
            db.executemany(
                UPSERT_STATUS,
                [(s.device_id, s.status, s.at_ms) for _, s in sorted(latest_status.items())],
            )
            db.executemany(INSERT_REJECTED, [astuple(r) for r in rejected])
        return WriteOutcome(
            stored=stored,
            duplicates=len(results) - stored,
            statuses=len(statuses),
            rejected=len(rejected),
        )

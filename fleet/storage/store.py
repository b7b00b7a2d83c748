"""Writes what the subscriber received, one transaction per batch, idempotently: a result
redelivered by the broker (same event_id) is kept once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ecolens.fleet.storage import rollups, seq_ranges
from ecolens.fleet.storage.database import Database


class StoredResult(NamedTuple):
    """One valid result, flattened for queries; ``payload`` keeps the original JSON.
    A tuple in column order, so batches go to executemany without conversion."""

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
    seq: int | None = None  # the bin's own result number (contract field ``seq``), for gaps


@dataclass(frozen=True)
class StatusUpdate:
    """A bin's retained ``online`` / ``offline`` (its last will), with its camera state
    (``up``, ``down``, ``starting``) when the bin reports one."""

    device_id: str
    status: str
    at_ms: int
    camera: str | None = None
    camera_error: str | None = None  # why the camera is down, as the bin said it
    camera_since_ms: int | None = None  # since when (the bin's clock)


class Rejected(NamedTuple):
    """A message that is not a valid result or status: kept for inspection, never retried."""

    received_ms: int
    topic: str
    reason: str
    payload: str
    kind: str = "other"  # core.wire.RejectionKind, set where the refusal was made; not stored


@dataclass(frozen=True)
class WriteOutcome:
    stored: int
    duplicates: int
    statuses: int
    rejected: int


# ON CONFLICT without a target: the dedup key is event_id on SQLite and (event_id, seen_ms) on
# PostgreSQL's partitioned table (docs/fleet.md). RETURNING names the rows really inserted: the
# ones the rollups count.
INSERT_RESULTS = """INSERT INTO results (event_id, device_id, seen_ms, received_ms, label,
    confidence, uncertain, inference_ms, frames, model_name, model_version, model_sha256, payload,
    seq) SELECT * FROM ({rows}) AS new_rows WHERE true ON CONFLICT DO NOTHING
    RETURNING device_id, seen_ms, label, uncertain, confidence, model_version, seq"""
RESULT_TYPES = ("text", "text", "bigint", "bigint", "text", "float8", "boolean", "float8", "integer",
                "text", "text", "text", "text", "bigint")  # fmt: skip

# One statement for both kinds of device news (NULL = no news), so a batch touches each device
# row once, in sorted order: concurrent aggregators cannot deadlock on devices. A retained
# status delivered again (aggregator restart) keeps the time it first changed.
UPSERT_DEVICE = """INSERT INTO devices (device_id, status, status_ms, last_result_ms, camera,
    camera_error, camera_since_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (device_id) DO UPDATE SET
        camera = CASE WHEN excluded.status IS NULL THEN devices.camera ELSE excluded.camera END,
        camera_error = CASE WHEN excluded.status IS NULL THEN devices.camera_error
            ELSE excluded.camera_error END,
        camera_since_ms = CASE WHEN excluded.status IS NULL THEN devices.camera_since_ms
            ELSE excluded.camera_since_ms END,
        status_ms = CASE
            WHEN excluded.status IS NULL THEN devices.status_ms
            WHEN devices.status = excluded.status AND devices.status_ms IS NOT NULL
                THEN devices.status_ms
            ELSE excluded.status_ms END,
        status = COALESCE(excluded.status, devices.status),
        last_result_ms = CASE
            WHEN devices.last_result_ms IS NULL OR excluded.last_result_ms > devices.last_result_ms
                THEN excluded.last_result_ms
            ELSE devices.last_result_ms END"""

INSERT_STATUS_EVENT = "INSERT INTO status_events (device_id, at_ms, status) VALUES (?, ?, ?)"

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
        # device_id -> [status, status_ms, last_result_ms, camera, camera_error, camera_since_ms]
        news: dict[str, list] = {}
        for result in results:
            entry = news.setdefault(result.device_id, [None] * 6)
            entry[2] = max(entry[2] or 0, result.seen_ms)
        for status in statuses:  # arrival order: the last one wins
            entry = news.setdefault(status.device_id, [None] * 6)
            entry[0], entry[1] = status.status, status.at_ms
            entry[3:] = status.camera, status.camera_error, status.camera_since_ms
        with self.database.transaction() as db:
            stored = insert_results(db, results)
            db.executemany(UPSERT_DEVICE, [(d, *news[d]) for d in sorted(news)])
            db.executemany(INSERT_STATUS_EVENT, [(s.device_id, s.at_ms, s.status) for s in statuses])
            db.executemany(INSERT_REJECTED, [(r.received_ms, r.topic, r.reason, r.payload) for r in rejected])
        return WriteOutcome(
            stored=stored,
            duplicates=len(results) - stored,
            statuses=len(statuses),
            rejected=len(rejected),
        )


# PostgreSQL: the insert and the rollups in one statement (rollups.insert_and_add)
INSERT_AND_ADD = rollups.insert_and_add(INSERT_RESULTS)


def insert_results(tx: Database, results: Sequence[StoredResult]) -> int:
    """Store results not stored before and add exactly those to the rollups and seq ranges
    (inside the caller's transaction); returns how many were new. Sorted by event id, so two
    aggregators given the same redelivered results wait for each other instead of deadlocking."""
    ordered = sorted(results, key=lambda result: result.event_id)
    if tx.kind == "postgresql":
        numbered = tx.bulk_returning(INSERT_AND_ADD, ordered, RESULT_TYPES)
    else:
        new = rollups.stored_rows(tx.bulk_returning(INSERT_RESULTS, ordered, RESULT_TYPES))
        rollups.add_results(tx, new)
        numbered = [(row.device_id, row.seq) for row in new]
    numbers: dict[str, list[int]] = {}
    for device_id, seq in numbered:
        if seq is not None:
            numbers.setdefault(device_id, []).append(int(seq))
    seq_ranges.add(tx, numbers)
    return len(numbered)

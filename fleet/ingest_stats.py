"""The aggregator's own counters and state since start: what /api/health, /metrics, the
dashboard's health line and the benchmark read. Updated from the MQTT and writer threads."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class IngestStats:
    """Counters since start; read by the HTTP health endpoint and the benchmark."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    statuses: int = 0
    batches: int = 0
    write_errors: int = 0
    refused_by_storage: int = 0
    connected: bool = False
    writer: str = "starting"  # running, stopped, or dead (the process then exits non-zero)
    last_error: str | None = None  # the current problem; cleared once it is over
    lag_s: float = 0.0  # age of the last batch's oldest message when it was committed
    last_message_ms: int | None = None  # when anything (result, status, stats) last arrived
    last_commit_ms: int | None = None  # when the last batch was committed: the data is as of then
    started_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    stats_received: int = 0  # bins' stats messages (QoS 0, not in ``received`` nor ``lag``)
    stats_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def rejected_as(self, kind: str) -> None:
        with self._lock:
            self.rejected_by_reason[kind] = self.rejected_by_reason.get(kind, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            snap = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
            snap["rejected_by_reason"] = dict(self.rejected_by_reason)
        # received but not yet stored, counted or rejected: grows when the writer is stuck
        snap["lag"] = snap["received"] - (
            snap["stored"] + snap["duplicates"] + snap["rejected"] + snap["statuses"]
        )
        return snap

"""Counters and gauges published on ``<prefix>/<device_id>/stats``."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


def percentile(values: deque[float] | list[float], q: float) -> float | None:
    """The one percentile (numpy's linear interpolation) of stats and benchmarks; None if empty."""
    return round(float(np.percentile(list(values), q)), 3) if values else None


class DaemonStats:
    """Thread-safe: the pipeline and the MQTT thread both update it."""

    def __init__(self, window: int = 500) -> None:
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.frames_read = 0
        self.items = 0
        self.published = 0
        self.dropped_full = 0
        # Counters owned by other parts (pipeline, source), read when a snapshot is taken so
        # there is one count, not a copy that nobody increments.
        self._counters: dict[str, Callable[[], int]] = {}
        self.store_errors = 0  # queue reads/writes that failed (disk full, I/O ...), retried
        self.store_error: str | None = None  # the current one; None once the queue works again
        self.unqueued = 0  # results lost because the queue could not take them
        self.items_by_label: dict[str, int] = {}
        self.uncertain = 0
        # The histograms of /metrics, fed below (prometheus_client, the edge extra: imported here
        # so that `percentile` stays importable without it).
        from ecolens.edge.daemon.metrics import DaemonMetrics

        self.metrics = DaemonMetrics()
        self.inference_ms: deque[float] = deque(maxlen=window)
        self.latency_ms: deque[float] = deque(maxlen=window)
        self._fps_mark = (time.monotonic(), 0)
        self._process: Any = None
        try:
            import psutil

            self._process = psutil.Process()
            self._process.cpu_percent(None)
        except ImportError:
            pass

    def count_from(self, name: str, read: Callable[[], int]) -> None:
        """Report ``read()`` as ``name`` in every snapshot."""
        self._counters[name] = read

    def frame(self) -> None:
        with self._lock:
            self.frames_read += 1

    def item(self, inference_ms: float, label: str | None = None, uncertain: bool = False) -> None:
        with self._lock:
            self.items += 1
            self.inference_ms.append(inference_ms)
            if label is not None:
                self.items_by_label[label] = self.items_by_label.get(label, 0) + 1
            self.uncertain += bool(uncertain)
        self.metrics.inference.observe(inference_ms / 1000.0)

    def acknowledged(self, latency_ms: float | None) -> None:
        with self._lock:
            self.published += 1
            if latency_ms is not None:
                self.latency_ms.append(latency_ms)
        if latency_ms is not None:
            self.metrics.frame_to_puback.observe(latency_ms / 1000.0)

    def counters(self) -> dict[str, Any]:
        """Totals since start, without touching the fps/CPU marks of ``snapshot``."""
        with self._lock:
            return {
                "uptime_s": round(time.monotonic() - self.started, 1),
                "frames_read": self.frames_read,
                "items": self.items,
                "items_by_label": dict(self.items_by_label),
                "uncertain": self.uncertain,
                "published": self.published,
                "store_errors": self.store_errors,
                "unqueued": self.unqueued,
                **{name: read() for name, read in self._counters.items()},
            }

    def store_failed(self, error: str) -> None:
        with self._lock:
            self.store_errors += 1
            self.store_error = error

    def store_recovered(self) -> None:
        with self._lock:
            self.store_error = None

    def snapshot(self, queue_depth: int, queue_dropped: int, model: dict[str, Any]) -> dict:
        """Figures since the previous snapshot (fps, CPU) and since start (counters)."""
        now = time.monotonic()
        with self._lock:
            mark_time, mark_frames = self._fps_mark
            fps = (self.frames_read - mark_frames) / max(1e-6, now - mark_time)
            self._fps_mark = (now, self.frames_read)
            snapshot = {
                "uptime_s": round(now - self.started, 1),
                "frames_read": self.frames_read,
                "fps": round(fps, 2),
                "items": self.items,
                "items_by_label": dict(self.items_by_label),
                "published": self.published,
                "inference_ms_p50": percentile(self.inference_ms, 50),
                "inference_ms_p95": percentile(self.inference_ms, 95),
                "latency_ms_p50": percentile(self.latency_ms, 50),
                "latency_ms_p95": percentile(self.latency_ms, 95),
                "queue_depth": queue_depth,
                "queue_dropped": queue_dropped,
                **{name: read() for name, read in self._counters.items()},
                "store_errors": self.store_errors,
                "store_error": self.store_error,
                "unqueued": self.unqueued,
                "model_version": model.get("version"),
                "model_sha256": model.get("sha256"),
            }
        if self._process is not None:
            snapshot["cpu_percent"] = self._process.cpu_percent(None)
            snapshot["rss_mb"] = round(self._process.memory_info().rss / 2**20, 1)
        return snapshot

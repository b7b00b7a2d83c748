"""Prometheus metrics. With several uvicorn workers every worker writes to PROMETHEUS_MULTIPROC_DIR (set by
the server before any worker imports this module) and /metrics sums them, so a scrape sees the
whole server whichever worker answers it."""

from __future__ import annotations

import contextlib
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter(
    "ecolens_http_requests",
    "HTTP requests by endpoint, method and status code",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "ecolens_http_request_duration_seconds",
    "Time from request start to response, by endpoint",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "ecolens_inference_duration_seconds",
    "Model time per image (interpreter invoke, excluding decoding)",
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter("ecolens_predictions", "Results returned, by label", ["label"])
MODEL_INFO = Gauge(
    "ecolens_model_info",
    "The served model (value 1)",
    ["name", "version", "sha256", "quantization"],
    multiprocess_mode="max",
)
MODEL_LOADED = Gauge(
    "ecolens_model_loaded",
    "Worker processes with the model loaded",
    multiprocess_mode="livesum",
)


def record_model(model_info: dict[str, str]) -> None:
    MODEL_INFO.labels(
        model_info.get("name", ""),
        model_info.get("version", ""),
        model_info.get("sha256", ""),
        model_info.get("quantization", ""),
    ).set(1)
    MODEL_LOADED.inc()


def record_request(endpoint: str, method: str, status: int, seconds: float) -> None:
    REQUESTS.labels(endpoint, method, str(status)).inc()
    REQUEST_SECONDS.labels(endpoint).observe(seconds)


def record_result(label: str, inference_ms: float) -> None:
    PREDICTIONS.labels(label).inc()
    INFERENCE_SECONDS.observe(inference_ms / 1000.0)


def worker_exiting() -> None:
    """Drop this process's live gauges (model loaded) from the shared directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        # A worker told to quit twice, or whose server already removed the directory, finds its
        # files gone between prometheus_client's glob and remove: gone is what this wants.
        with contextlib.suppress(FileNotFoundError):
            multiprocess.mark_process_dead(os.getpid())


def render() -> tuple[bytes, str]:
    """The exposition text: every worker's values when running multi-process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

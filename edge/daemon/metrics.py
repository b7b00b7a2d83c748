"""Prometheus metrics of one bin daemon, served at /metrics by its web page ([web]).

Counters and gauges are read from the daemon's own figures at scrape time (nothing extra per
frame); only the two latency histograms are fed as results happen. A registry of its own, so
a daemon and the API in one process (tests, the demo) never clash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

# Inference on a Pi 4 is 20-200 ms; frame-to-PUBACK adds the settle time and the network.
INFERENCE_BUCKETS = (0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0)
PUBACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class DaemonMetrics:
    """The registry; ``observe_*`` are called by DaemonStats as items and PUBACKs happen."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.inference = Histogram(
            "ecolens_daemon_inference_duration_seconds",
            "Model time per item (all frames classified for it)",
            buckets=INFERENCE_BUCKETS,
            registry=self.registry,
        )
        self.frame_to_puback = Histogram(
            "ecolens_daemon_frame_to_puback_seconds",
            "From reading the frame that completed an item to the broker's PUBACK of its result",
            buckets=PUBACK_BUCKETS,
            registry=self.registry,
        )

    def watch(self, read: Callable[[], dict[str, Any]]) -> None:
        """``read()`` returns the daemon's figures (see DaemonCollector) at each scrape."""
        self.registry.register(DaemonCollector(read))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class DaemonCollector(Collector):
    """Counters and gauges from one dict read at scrape time."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Any]:
        figures = self.read()
        counters = (
            ("frames", "frames_read", "Frames read from the source"),
            ("published", "published", "Results acknowledged by the broker (PUBACK)"),
            ("queue_dropped", "queue_dropped", "Results dropped because the offline queue was full"),
            ("skipped_uncertain", "skipped_uncertain", "Uncertain results not published ([detect])"),
            ("source_reopens", "source_reopens", "Times the frame source was reopened after a failure"),
            ("store_errors", "store_errors", "Queue reads or writes that failed (disk full, I/O), retried"),
            ("unqueued", "unqueued", "Results lost because the queue could not take them"),
        )
        for name, key, text in counters:
            yield CounterMetricFamily(f"ecolens_daemon_{name}", text, value=figures[key])
        items = CounterMetricFamily("ecolens_daemon_items", "Items classified, by label", labels=["label"])
        for label, count in sorted(figures["items_by_label"].items()):
            items.add_metric([label], count)
        yield items
        uncertain = "Items below model.min_confidence (flagged uncertain)"
        yield CounterMetricFamily("ecolens_daemon_uncertain_items", uncertain, value=figures["uncertain"])
        yield GaugeMetricFamily(
            "ecolens_daemon_queue_depth", "Results waiting in the offline queue", value=figures["queue_depth"]
        )
        yield GaugeMetricFamily(
            "ecolens_daemon_mqtt_connected",
            "1 while connected to the broker",
            value=1 if figures["mqtt_connected"] else 0,
        )
        yield GaugeMetricFamily(
            "ecolens_daemon_uptime_seconds", "Seconds since the daemon started", value=figures["uptime_s"]
        )
        camera = GaugeMetricFamily(
            "ecolens_daemon_camera_state",
            "1 for the camera's current state (starting, up, down), 0 for the others",
            labels=["state"],
        )
        for state in ("starting", "up", "down"):
            camera.add_metric([state], 1 if figures.get("camera") == state else 0)
        yield camera
        model = figures["model"]
        info = InfoMetricFamily("ecolens_daemon_model", "The model the daemon runs")
        info.add_metric([], {k: str(model.get(k, "")) for k in ("name", "version", "sha256", "quantization")})
        yield info

"""``GET /metrics`` of the aggregator: Prometheus text, so that alerting sees lost results
(``ecolens_fleet_results_missing > 0``) and a stuck or dead writer without parsing JSON."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

COUNTERS = ("received", "stored", "duplicates", "rejected", "statuses", "write_errors", "refused_by_storage")


class FleetCollector:
    """Read at every scrape: the database's gap counts and the writer's counters."""

    def __init__(
        self, missing: Callable[[], dict[str, int]], ingest: Callable[[], dict[str, Any]] | None
    ) -> None:
        self.missing = missing
        self.ingest = ingest

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        missing = GaugeMetricFamily(
            "ecolens_fleet_results_missing",
            "Results a bin numbered (seq) that are not stored: lost between the bin and here",
            labels=["device_id"],
        )
        for device_id, count in self.missing().items():
            missing.add_metric([device_id], count)
        yield missing
        if self.ingest is None:
            return
        stats = self.ingest()
        for name in COUNTERS:
            yield CounterMetricFamily(
                f"ecolens_fleet_ingest_{name}", f"messages {name} since start", stats[name]
            )
        yield GaugeMetricFamily("ecolens_fleet_ingest_lag", "received but not yet stored", stats["lag"])
        yield GaugeMetricFamily(
            "ecolens_fleet_broker_connected", "1 while subscribed", int(stats["connected"])
        )
        yield GaugeMetricFamily(
            "ecolens_fleet_writer_running",
            "1 while the writer thread stores",
            int(stats["writer"] == "running"),
        )


def render(
    missing: Callable[[], dict[str, int]], ingest: Callable[[], dict[str, Any]] | None
) -> tuple[bytes, str]:
    """(body, content type) for one scrape."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(missing, ingest))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST

"""``GET /metrics`` of the aggregator: Prometheus text, so that alerting sees lost results
(``ecolens_fleet_results_missing > 0``), a stuck or dead writer, rejections by reason and bins
that went quiet, without parsing JSON. Built at scrape time from what the aggregator already
keeps (nothing extra per message)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ecolens.fleet.queries import BinStatus
from ecolens.fleet.rejections import REASON_KINDS, reason_kind
from ecolens.fleet.storage.binstats import BinStats

COUNTERS = (
    "received", "stored", "duplicates", "rejected", "statuses", "write_errors", "refused_by_storage",
    "stats_received", "stats_rejected",
)  # fmt: skip
STATES = ("online", "stale", "offline", "unknown")

__all__ = ["REASON_KINDS", "FleetCollector", "reason_kind", "render"]


def _epoch_s(iso_time: str | None) -> float | None:
    if iso_time is None:
        return None
    from datetime import datetime

    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


class FleetCollector:
    """Read at every scrape: the database's gap counts and bin states, the writer's counters."""

    def __init__(
        self,
        missing: Callable[[], dict[str, int]],
        ingest: Callable[[], dict[str, Any]] | None,
        bins: Callable[[], list[BinStatus]] = list,
        stats: Callable[[], dict[str, BinStats]] = dict,
    ) -> None:
        self.missing = missing
        self.ingest = ingest
        self.bins = bins
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        missing = GaugeMetricFamily(
            "ecolens_fleet_results_missing",
            "Results a bin numbered (seq) that are not stored: lost between the bin and here",
            labels=["device_id"],
        )
        for device_id, count in self.missing().items():
            missing.add_metric([device_id], count)
        yield missing
        bins = self.bins()
        yield from self._bins(bins)
        yield from self._health(bins, self.stats())
        if self.ingest is not None:
            yield from self._ingest(self.ingest())

    def _bins(self, bins: list[BinStatus]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        last_seen = GaugeMetricFamily(
            "ecolens_fleet_bin_last_seen_timestamp_seconds",
            "When each bin was last heard from (status or result), Unix time",
            labels=["device_id"],
        )
        online = GaugeMetricFamily(
            "ecolens_fleet_bin_online",
            "1 when the bin is online (its status says so and it is not silent), else 0",
            labels=["device_id"],
        )
        for status in bins:
            seen = _epoch_s(status.last_seen)
            if seen is not None:
                last_seen.add_metric([status.device_id], seen)
            online.add_metric([status.device_id], 1 if status.state == "online" else 0)
        yield last_seen
        yield online
        counts = GaugeMetricFamily("ecolens_fleet_bins", "Bins by state", labels=["state"])
        for name in STATES:
            counts.add_metric([name], sum(s.state == name for s in bins))
        yield counts

    def _health(self, bins: list[BinStatus], stats: dict[str, BinStats]) -> Iterator[Any]:
        """Camera state of the bins that report one (offline ones left out: their camera is
        unknown) and each bin's latest stats, in base units."""
        from prometheus_client.core import GaugeMetricFamily

        camera = GaugeMetricFamily(
            "ecolens_fleet_bin_camera_up",
            "1 while the bin's camera delivers frames, 0 while down or starting (bins that report it)",
            labels=["device_id"],
        )
        for status in bins:
            if status.camera is not None and status.state != "offline":
                camera.add_metric([status.device_id], 1 if status.camera == "up" else 0)
        yield camera
        figures = (  # (name, help, the stats field, scale)
            ("stats_timestamp_seconds", "When the bin's latest stats arrived", "received_ms", 1e-3),
            ("inference_p95_seconds", "p95 of the bin's recent inference times", "inference_ms_p95", 1e-3),
            ("queue_depth", "Results in the bin's queue, not yet acknowledged", "queue_depth", 1),
            ("queue_dropped", "Results dropped from the bin's full queue since start", "queue_dropped", 1),
            ("cpu_ratio", "The bin daemon's CPU use (1 = one core busy)", "cpu_percent", 1e-2),
            ("memory_bytes", "The bin daemon's resident memory", "rss_mb", 2**20),
        )  # fmt: skip
        for name, text, field, scale in figures:
            family = GaugeMetricFamily(f"ecolens_fleet_bin_{name}", text, labels=["device_id"])
            for device_id, latest in sorted(stats.items()):
                value = getattr(latest, field)
                if value is not None:
                    family.add_metric([device_id], value * scale)
            yield family

    def _ingest(self, stats: dict[str, Any]) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name in COUNTERS:
            yield CounterMetricFamily(
                f"ecolens_fleet_ingest_{name}", f"messages {name} since start", stats[name]
            )
        by_reason = CounterMetricFamily(
            "ecolens_fleet_ingest_rejected_by_reason",
            "Messages rejected, by reason: " + ", ".join(REASON_KINDS),
            labels=["reason"],
        )
        for kind, count in sorted(stats.get("rejected_by_reason", {}).items()):
            by_reason.add_metric([kind], count)
        yield by_reason
        yield GaugeMetricFamily("ecolens_fleet_ingest_lag", "received but not yet stored", stats["lag"])
        yield GaugeMetricFamily(
            "ecolens_fleet_writer_lag_seconds",
            "Age of the last committed batch's oldest message when it was committed",
            stats.get("lag_s", 0.0),
        )
        yield GaugeMetricFamily(
            "ecolens_fleet_broker_connected", "1 while subscribed", int(stats["connected"])
        )
        last = stats.get("last_message_ms")
        if last is not None:
            yield GaugeMetricFamily(
                "ecolens_fleet_last_message_timestamp_seconds",
                "When the last message (result, status or stats) arrived, Unix time",
                last / 1000,
            )
        yield GaugeMetricFamily(
            "ecolens_fleet_writer_running",
            "1 while the writer thread stores",
            int(stats["writer"] == "running"),
        )
        canary = stats.get("canary")
        if canary is not None:
            yield GaugeMetricFamily(
                "ecolens_fleet_canary_watching",
                "Staged rollouts whose canary is being watched",
                canary["watching"],
            )
            decisions = CounterMetricFamily(
                "ecolens_fleet_canary_decisions",
                "Canary verdicts since start: healthy, rolled_back, worse (judged worse, not rolled back), "
                "inconclusive (not promoted)",
                labels=["verdict"],
            )
            for name, key in (
                ("healthy", "healthy"),
                ("rolled_back", "rolled_back"),
                ("worse", "worse_not_rolled_back"),
                ("inconclusive", "inconclusive"),
            ):
                decisions.add_metric([name], canary[key])
            yield decisions
            yield CounterMetricFamily(
                "ecolens_fleet_canary_check_errors",
                "Canary checks that failed (database or broker away)",
                canary["errors"],
            )


def render(
    missing: Callable[[], dict[str, int]],
    ingest: Callable[[], dict[str, Any]] | None,
    bins: Callable[[], list[BinStatus]] = list,
    stats: Callable[[], dict[str, BinStats]] = dict,
) -> tuple[bytes, str]:
    """(body, content type) for one scrape."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(missing, ingest, bins, stats))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST

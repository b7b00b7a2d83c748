"""`ecolens simulate`: N virtual bins of a city (fleet/city.py) publishing realistic contract
results, retained status and stats, for demos, tests and benchmarks; with ``--scenario``, a
fleet with every state at once (fleet/scenario.py). Results are built by the edge's own
make_result, so the aggregator sees exactly what real bins send."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ecolens.core.contract import utc_timestamp
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, ConnectFailed
from ecolens.core.wire import CAMERA_UP, ONLINE, result_topic, stats_topic, status_topic
from ecolens.fleet.city import CityBin, backfill_times, city_result, make_bins
from ecolens.fleet.scenario import Scenario

log = logging.getLogger(__name__)

STATS_INTERVAL_S = 60.0  # the daemon's default stats interval

FALLBACK_LABELS = ("non_plastic", "plastic")
FALLBACK_MODEL = {
    "name": "ecolens-plastic-lite0",
    "version": "simulated",
    "sha256": "0" * 64,
    "quantization": "int8",
}


def reference_model_info(model_path: Path | None = None) -> tuple[tuple[str, ...], dict[str, str]]:
    """Labels and model info of the shipped model (what real bins report), else stand-ins."""
    from ecolens.models import reference_tflite

    path = model_path or reference_tflite()
    if not path.is_file():
        return FALLBACK_LABELS, dict(FALLBACK_MODEL)
    from ecolens.core.classifier import file_sha256
    from ecolens.core.metadata import read_metadata

    meta = read_metadata(path)
    info = {
        "name": meta.name,
        "version": meta.version,
        "sha256": file_sha256(path),
        "quantization": meta.quantization,
    }
    return tuple(meta.labels), info


@dataclass
class SimulationSummary:
    """What was published, so tests and benchmarks can check what was stored."""

    results: int = 0
    by_bin_label: Counter = field(default_factory=Counter)
    # (event_id, device_id, label, timestamp) of every result, in publishing order
    published: list[tuple[str, str, str, str]] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, device_id: str, label: str) -> int:
        return self.by_bin_label[(device_id, label)]

    @property
    def event_ids(self) -> list[str]:
        return [record[0] for record in self.published]


class FleetSimulator:
    """One MQTT connection publishing for all virtual bins (QoS 1, like real bins)."""

    def __init__(
        self,
        broker: BrokerSection,
        prefix: str = "ecolens",
        bins: int = 10,
        seed: int | None = None,
        labels: tuple[str, ...] | None = None,
        model_info: dict[str, str] | None = None,
        plastic_label: str = "plastic",
        id_prefix: str = "bin",
    ) -> None:
        if bins < 1:
            raise ConfigError("--bins must be at least 1")
        self.broker = broker
        self.prefix = prefix
        self.random = random.Random(seed)
        if labels is None or model_info is None:
            labels, model_info = reference_model_info()
        self.labels = labels
        self.model_info = model_info
        if plastic_label not in labels:
            raise ConfigError(f"the model's labels {labels} do not include {plastic_label!r}")
        self.plastic_label = plastic_label
        self.bins = make_bins(self.random, bins, id_prefix)
        self.started = time.time()
        self.summary = SimulationSummary()
        self._client: Any = None

    # -- results --------------------------------------------------------------------------
    def make_result(self, bin_: CityBin, seen_at: datetime) -> dict[str, Any]:
        """One item of ``bin_``: its plastic share, its lens's uncertainty, its speed."""
        return city_result(self.random, bin_, self.labels, self.model_info, self.plastic_label, seen_at)

    def make_stats(self, bin_: CityBin) -> dict[str, Any]:
        """What a daemon publishes on its stats topic, for a healthy bin."""
        rng = self.random
        return {
            "uptime_s": round(time.time() - self.started, 1), "fps": round(rng.uniform(4, 6), 2),
            "items": bin_.sent, "inference_ms_p95": round(bin_.inference_ms * rng.uniform(1.15, 1.35), 1),
            "queue_depth": 0, "queue_dropped": 0, "cpu_percent": round(rng.uniform(18, 45), 1),
            "rss_mb": round(rng.uniform(150, 230), 1),
        }  # fmt: skip

    # -- MQTT -----------------------------------------------------------------------------
    def connect(self) -> FleetSimulator:
        from ecolens.core.mqtt.client import MqttClient  # paho only when publishing (bench imports this)

        client = MqttClient(self.broker, f"ecolens-simulator-{uuid.uuid4().hex[:8]}", mqtt5=True)
        try:
            client.connect()
        except ConnectFailed as exc:
            raise ConfigError(
                f"cannot connect to the MQTT broker {self.broker.host}:{self.broker.port}: {exc.cause}"
            ) from exc
        self._client = client.start()
        return self

    def publish_status(self, device_id: str, status: str) -> None:
        """Retained, like a real bin's status (JSON with its camera) and last will (``offline``)."""
        topic = status_topic(self.prefix, device_id)
        payload = status
        if status == ONLINE:
            body = {"status": ONLINE, "camera": CAMERA_UP, "camera_error": None,
                    "camera_since": utc_timestamp(), "source": "simulated"}  # fmt: skip
            payload = json.dumps(body)
        self._client.publish(topic, payload, qos=1, retain=True).wait(30)
        self.summary.statuses[device_id] = status

    def publish_stats(self) -> None:
        """Every bin's stats, at QoS 0 as a daemon sends them."""
        for bin_ in self.bins:
            topic = stats_topic(self.prefix, bin_.device_id)
            self._client.publish(topic, json.dumps(self.make_stats(bin_)), qos=0)

    def publish_scenario(self, scenario: Scenario) -> None:
        """The scenario's timeline in order, as fast as the broker takes it; returns once the
        broker acknowledged every QoS 1 message."""
        pending = []
        for message in scenario.messages:
            publication = self._client.publish(
                message.topic, message.payload, qos=message.qos, retain=message.retain
            )
            if message.qos:
                pending.append(publication)
            if message.topic.endswith("/result"):
                self.summary.results += 1
        for publication in pending:
            publication.wait(120)

    def publish_result(self, bin_: CityBin, seen_at: datetime) -> Any:
        """The Publication (core.mqtt.client), done once the broker acknowledged it."""
        result = self.make_result(bin_, seen_at)
        info = self._client.publish(result_topic(self.prefix, bin_.device_id), json.dumps(result), qos=1)
        self.summary.results += 1
        self.summary.by_bin_label[(bin_.device_id, result["label"])] += 1
        self.summary.published.append(
            (result["event_id"], bin_.device_id, result["label"], result["timestamp"])
        )
        return info

    def run(
        self,
        count: int | None = None,
        duration_s: float | None = None,
        rate: float = 1.0,
        backfill_hours: float = 0.0,
    ) -> SimulationSummary:
        """Publish until ``count`` results or ``duration_s`` seconds. ``rate`` is results per
        second per bin (0 = as fast as the broker takes them). With ``backfill_hours``, the
        results' timestamps are spread over that many past hours, following the day's rhythm
        (dashboards, reports). Bins send in proportion to their volume; every bin publishes
        its stats at the start and every STATS_INTERVAL_S."""
        if count is None and duration_s is None:
            raise ConfigError("give --count or --duration")
        if rate < 0:
            raise ConfigError("--rate must be >= 0")
        for bin_ in self.bins:
            self.publish_status(bin_.device_id, "online")
        self.publish_stats()
        stats_due = time.monotonic() + STATS_INTERVAL_S
        interval = 1.0 / (rate * len(self.bins)) if rate > 0 else 0.0
        started = time.monotonic()
        now_ms = int(time.time() * 1000)
        past = backfill_times(self.random, count, backfill_hours, now_ms) if backfill_hours and count else []
        weights = [bin_.volume for bin_ in self.bins]
        pending = []
        index = 0
        while (count is None or index < count) and (
            duration_s is None or time.monotonic() - started < duration_s
        ):
            bin_ = self.random.choices(self.bins, weights)[0]
            if past:
                seen_at = datetime.fromtimestamp(past[index] / 1000, tz=timezone.utc)
            else:
                seen_at = datetime.now(timezone.utc)
            if time.monotonic() >= stats_due:
                self.publish_stats()
                stats_due = time.monotonic() + STATS_INTERVAL_S
            pending.append(self.publish_result(bin_, seen_at))
            if len(pending) >= 10000:
                pending = [publication for publication in pending if not publication.done()]
            index += 1
            if interval:
                delay = started + index * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        for publication in pending:  # every result acknowledged by the broker
            publication.wait(120)
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def close(self, offline: bool = True) -> None:
        """Mark every bin offline (what their last wills would say) and disconnect."""
        if self._client is None:
            return
        if offline:
            for bin_ in self.bins:
                self.publish_status(bin_.device_id, "offline")
        self._client.stop()
        self._client = None

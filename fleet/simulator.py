"""`ecolens simulate`: N virtual bins publishing realistic contract results and retained
status, for demos, tests and benchmarks. Results are built by the edge's own make_result,
so the aggregator sees exactly what real bins send."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ecolens.core.contract import make_result
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, ConnectFailed
from ecolens.core.wire import result_topic, status_topic

log = logging.getLogger(__name__)

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
class VirtualBin:
    """A bin with its own plastic rate and camera/model speed."""

    device_id: str
    plastic_rate: float
    inference_ms: float
    sent: int = 0  # the last result number (contract ``seq``), as a real bin's queue keeps it


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
        width = max(3, len(str(bins)))
        self.bins = [
            VirtualBin(
                f"{id_prefix}-{i:0{width}d}",
                plastic_rate=self.random.uniform(0.1, 0.7),
                inference_ms=self.random.uniform(18.0, 45.0),
            )
            for i in range(1, bins + 1)
        ]
        self.summary = SimulationSummary()
        self._client: Any = None

    # -- results --------------------------------------------------------------------------
    def make_result(self, bin_: VirtualBin, seen_at: datetime) -> dict[str, Any]:
        """A confident-ish two-class result: the true class wins with 55-99 % probability."""
        plastic = self.random.random() < bin_.plastic_rate
        winner = self.random.betavariate(6, 1.5) * 0.44 + 0.55
        probabilities = [
            winner if (label == self.plastic_label) == plastic else 1.0 - winner for label in self.labels
        ]
        total = sum(probabilities)
        bin_.sent += 1
        return make_result(
            self.labels,
            [p / total for p in probabilities],
            self.model_info,
            max(1.0, self.random.gauss(bin_.inference_ms, 3.0)),
            seen_at=seen_at,
            min_confidence=0.6,
            frames=self.random.choice((1, 1, 2, 3)),
            device_id=bin_.device_id,
            event_id=str(uuid.UUID(int=self.random.getrandbits(128), version=4)),
            seq=bin_.sent,
        )

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
        """Retained, like a real bin's online message and last will."""
        topic = status_topic(self.prefix, device_id)
        self._client.publish(topic, status, qos=1, retain=True).wait(30)
        self.summary.statuses[device_id] = status

    def publish_result(self, bin_: VirtualBin, seen_at: datetime) -> Any:
        """The Publication (core.mqtt.client), done once the broker acknowledged it."""
        import json

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
        results' timestamps are spread evenly over that many past hours (dashboards, reports)."""
        if count is None and duration_s is None:
            raise ConfigError("give --count or --duration")
        if rate < 0:
            raise ConfigError("--rate must be >= 0")
        for bin_ in self.bins:
            self.publish_status(bin_.device_id, "online")
        interval = 1.0 / (rate * len(self.bins)) if rate > 0 else 0.0
        started = time.monotonic()
        now = datetime.now(timezone.utc)
        pending = []
        index = 0
        while (count is None or index < count) and (
            duration_s is None or time.monotonic() - started < duration_s
        ):
            bin_ = self.bins[index % len(self.bins)]
            if backfill_hours and count:
                seen_at = now - timedelta(hours=backfill_hours) * (1 - index / count)
            else:
                seen_at = datetime.now(timezone.utc)
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

"""``ecolens simulate --scenario``: one city fleet with every state the dashboard, the report
and the alert rules know, at once, over the last 24 hours: offline (its last will), stale (says
online, silent for hours), camera down with the bin's reason, a camera that went down and
recovered, an outage caught up by store-and-forward (late results with their own times),
results lost on the way (gaps in ``seq``), a dirty lens (many uncertain), slow inference, a
growing queue, a bin without a status, and healthy bins around them, all sending stats.

The scenario is a timeline of the messages the bins would have sent, each with the time it was
sent. The simulator publishes it over MQTT (the aggregator stamps its own arrival times, so a
stale bin turns stale only ``report.stale_after_s`` later); ``store_timeline`` feeds it through
the aggregator's own parsing into a database at the timeline's times (tests, screenshots)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ecolens.core.contract import utc_timestamp
from ecolens.core.errors import ConfigError
from ecolens.core.wire import (
    CAMERA_DOWN,
    CAMERA_UP,
    OFFLINE,
    ONLINE,
    STATS,
    device_of,
    result_topic,
    stats_topic,
    status_topic,
)  # fmt: skip
from ecolens.fleet.binstats import parse_stats
from ecolens.fleet.city import HOUR_MS, CityBin, city_result, item_times, make_bins
from ecolens.fleet.messages import parse_message
from ecolens.fleet.storage.binstats import write_stats
from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.store import ResultStore, StatusUpdate, StoredResult

MINUTE_MS = 60_000
# Beta shapes of the winning probability (fleet/city.py): the dirty-lens bin, and the lens every
# other bin gets here. A city bin's own lens (about 4 % uncertain) puts a quiet bin's 29 items a
# day above the 15 % "needs attention" line at some hours of the day, so the scenario's healthy
# bins would need attention depending on when it is built; this one (about 0.3 %) never does.
DIRTY_LENS, CLEAN_LENS = 0.8, 4.0
# the states, in the order they are spread over the fleet's bin numbers
ROLES = (
    "offline", "stale", "camera_down", "missing", "uncertain", "slow", "queue", "outage",
    "camera_recovered", "unknown",
)  # fmt: skip
CAMERA_ERRORS = {
    "camera_down": "cannot open /dev/video0: No such device",
    "camera_recovered": "no frame for 10 s (USB camera reset)",
}


@dataclass(frozen=True)
class TimedMessage:
    """One message a bin sent, and when."""

    at_ms: int
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@dataclass
class Scenario:
    """The timeline, sorted by time, and which bin plays which state."""

    messages: list[TimedMessage] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)  # role -> device_id
    bins: list[CityBin] = field(default_factory=list)


def role_numbers(bins: int) -> dict[int, str]:
    """Bin number -> role, spread evenly over the fleet (bin-003, bin-007 ... for 42 bins)."""
    if bins < len(ROLES) + 2:
        raise ConfigError(f"--scenario needs at least {len(ROLES) + 2} bins (one per state, two healthy)")
    step = bins / len(ROLES)
    return {int(step * k + step / 2) + 1: role for k, role in enumerate(ROLES)}


class ScenarioBuilder:
    """Builds the timeline bin by bin; ``now_ms`` is the end of the 24 hours."""

    def __init__(self, prefix: str, labels: tuple[str, ...], model_info: dict[str, str], plastic_label: str,
                 seed: int | None, now_ms: int) -> None:  # fmt: skip
        self.prefix, self.labels, self.model_info = prefix, labels, model_info
        self.plastic_label, self.now = plastic_label, now_ms
        self.rng = random.Random(seed)
        self.scenario = Scenario()

    def add(self, at_ms: int, topic: str, body: object, qos: int = 1, retain: bool = False) -> None:
        payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.scenario.messages.append(TimedMessage(at_ms, topic, payload, qos, retain))

    def status(self, bin_: CityBin, at_ms: int, camera: str = CAMERA_UP, error: str | None = None,
               since_ms: int | None = None) -> None:  # fmt: skip
        body = {"status": ONLINE, "camera": camera, "camera_error": error,
                "camera_since": _stamp(since_ms or at_ms), "source": "/dev/video0"}  # fmt: skip
        self.add(at_ms, status_topic(self.prefix, bin_.device_id), body, retain=True)

    def results(self, bin_: CityBin, times: list[int], sent_at: int | None = None, lose: int = 0,
                slow: float = 1.0) -> None:  # fmt: skip
        """Results seen at ``times``; published as seen, or all at ``sent_at`` (a queue catching
        up); ``lose`` of them numbered but never arriving, never the newest (a gap shows only
        below a number that did arrive, so a lost newest one would not be seen as missing)."""
        lost = set(self.rng.sample(range(len(times) - 1), min(lose, max(0, len(times) - 1))))
        for index, seen in enumerate(times):
            seen_at = datetime.fromtimestamp(seen / 1000, tz=timezone.utc)
            result = city_result(
                self.rng, bin_, self.labels, self.model_info, self.plastic_label, seen_at, slow
            )
            if index not in lost:
                self.add(sent_at or seen + 40, result_topic(self.prefix, bin_.device_id), result)
            else:
                bin_.skipped.add(result["seq"])

    def stats(self, bin_: CityBin, at_ms: int, queue: int = 0, slow: float = 1.0) -> None:
        rng, started = self.rng, self.now - 27 * HOUR_MS
        body = {
            "uptime_s": round((at_ms - started) / 1000, 1), "fps": round(rng.uniform(4, 6), 2),
            "inference_ms_p50": round(bin_.inference_ms * slow, 1),
            "inference_ms_p95": round(bin_.inference_ms * slow * rng.uniform(1.15, 1.35), 1),
            "queue_depth": queue, "queue_dropped": 0,
            "cpu_percent": round(rng.uniform(18, 45) * slow**0.2, 1),
            "rss_mb": round(rng.uniform(150, 230), 1),
        }  # fmt: skip
        self.add(at_ms, stats_topic(self.prefix, bin_.device_id), body, qos=0)

    def play(self, bin_: CityBin, role: str | None) -> None:
        """One bin's 24 hours, as its role has them."""
        now, start, rng = self.now, self.now - 24 * HOUR_MS, self.rng
        recent = now - rng.randint(1, 12) * MINUTE_MS  # a live bin's last item
        if role != "unknown":
            self.status(bin_, start - 3 * HOUR_MS)
        slow = 25.0 if role == "slow" else 1.0
        bin_.lens = DIRTY_LENS if role == "uncertain" else max(bin_.lens, CLEAN_LENS)
        if role == "offline":
            end = now - 5 * HOUR_MS
            self.results(bin_, item_times(rng, bin_, start, end))
            self.stats(bin_, end)
            self.add(end + 2 * MINUTE_MS, status_topic(self.prefix, bin_.device_id), OFFLINE, retain=True)
            return
        if role == "stale":
            silent = now - 3 * HOUR_MS - 5 * MINUTE_MS  # its last item: silent for 3 h
            self.results(bin_, [*item_times(rng, bin_, start, silent - HOUR_MS), silent])
            return
        if role == "outage":  # offline for two hours; its queue sends what it saw on return
            down, up = now - 8 * HOUR_MS, now - 6 * HOUR_MS
            self.results(bin_, item_times(rng, bin_, start, down))
            self.add(down, status_topic(self.prefix, bin_.device_id), OFFLINE, retain=True)
            self.status(bin_, up)
            self.results(bin_, item_times(rng, bin_, down, up), sent_at=up + MINUTE_MS)
            self.results(bin_, [*item_times(rng, bin_, up, now - HOUR_MS), recent])
        elif role == "camera_recovered":
            down, up = now - 10 * HOUR_MS, now - 9 * HOUR_MS
            self.results(bin_, item_times(rng, bin_, start, down))
            self.status(bin_, down, CAMERA_DOWN, CAMERA_ERRORS[role], down)
            self.status(bin_, up, CAMERA_UP, None, up)
            self.results(bin_, [*item_times(rng, bin_, up, now - HOUR_MS), recent])
        elif role == "camera_down":
            down = now - 40 * MINUTE_MS
            self.results(bin_, [*item_times(rng, bin_, start, down - HOUR_MS), down - 2 * MINUTE_MS])
            self.status(bin_, down, CAMERA_DOWN, CAMERA_ERRORS[role], down)
        elif role == "queue":  # its results of the last 20 minutes wait in its queue
            self.results(bin_, [*item_times(rng, bin_, start, now - HOUR_MS), now - 21 * MINUTE_MS])
            self.stats(bin_, now - 4 * MINUTE_MS, queue=35)
        else:
            lose = 4 if role == "missing" else 0
            self.results(bin_, [*item_times(rng, bin_, start, now - HOUR_MS), recent], lose=lose, slow=slow)
        self.stats(bin_, now - rng.randint(5, 50) * 1000, queue=80 if role == "queue" else 0, slow=slow)


def build_scenario(prefix: str, bins: int, labels: tuple[str, ...], model_info: dict[str, str],
                   plastic_label: str = "plastic", seed: int | None = 26,
                   now_ms: int | None = None) -> Scenario:  # fmt: skip
    """The whole fleet's timeline, sorted by the time each message was sent."""
    import time

    roles = role_numbers(bins)
    builder = ScenarioBuilder(
        prefix, labels, model_info, plastic_label, seed, now_ms or int(time.time() * 1000)
    )
    city = make_bins(builder.rng, bins)
    for number, bin_ in enumerate(city, start=1):
        builder.play(bin_, roles.get(number))
    scenario = builder.scenario
    scenario.messages.sort(key=lambda m: m.at_ms)
    scenario.roles = {role: city[number - 1].device_id for number, role in roles.items()}
    scenario.bins = city
    return scenario


def _stamp(epoch_ms: int) -> str:
    return utc_timestamp(datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc))


def store_timeline(database: Database, prefix: str, messages: list[TimedMessage]) -> None:
    """The timeline through the aggregator's own parsing and storage, each message as if it
    arrived when it was sent: runs of results in one batch, each status and stats on its own
    (their order is their meaning)."""
    store, batch = ResultStore(database), []
    for message in messages:
        if message.topic.endswith("/" + STATS):
            store.write(batch)
            batch = []
            write_stats(database, [parse_stats(device_of(message.topic), message.payload, message.at_ms)])
            continue
        parsed = parse_message(prefix, message.topic, message.payload, message.at_ms)
        if isinstance(parsed, StoredResult):
            batch.append(parsed)
            continue
        store.write(batch, [parsed] if isinstance(parsed, StatusUpdate) else [])
        batch = []
    store.write(batch)

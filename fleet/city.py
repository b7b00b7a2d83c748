"""A city's bins, as the simulator plays them: each bin has its own volume (a station bin sees
ten times a park bin's items), plastic share, lens (how often the model is unsure) and speed;
items follow the day (a morning and an evening peak, quiet nights). Results are built by the
edge's own ``make_result`` and numbered (``seq``) as a real bin's queue numbers them."""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ecolens.core.contract import make_result

MIN_CONFIDENCE = 0.6  # the daemon's default threshold: below it a result is uncertain
HOUR_MS = 3_600_000


def rhythm(hour: float) -> float:
    """Relative item rate at a (local) hour of the day: 1.0 at the evening peak, ~0.04 at 4 am."""
    morning = math.exp(-(((hour - 8.5) / 1.6) ** 2)) * 0.75
    evening = math.exp(-(((hour - 18.0) / 2.4) ** 2))
    day = 0.35 if 7 <= hour <= 21 else 0.0
    return max(0.04, morning + evening + day) / 1.36


@dataclass
class CityBin:
    """One bin's character. ``lens`` is the Beta shape of the winning probability: lower is a
    blurrier view (2.2: about 4 % uncertain; 0.8, a dirty lens: about a third)."""

    device_id: str
    items_per_hour: float  # at the evening peak
    plastic_rate: float
    lens: float
    inference_ms: float
    sent: int = 0  # the last result number (contract ``seq``)
    skipped: set[int] = field(default_factory=set)  # numbers lost on the way (never published)

    @property
    def volume(self) -> float:
        """Items a day, for weighting bins against each other."""
        return self.items_per_hour * 12.0


def make_bins(rng: random.Random, count: int, id_prefix: str = "bin") -> list[CityBin]:
    """``count`` bins with log-normal volumes (a few busy ones, many quiet), plastic shares
    around a third, mostly clean lenses and Raspberry-Pi-like inference times."""
    width = max(3, len(str(count)))
    return [
        CityBin(
            f"{id_prefix}-{i:0{width}d}",
            items_per_hour=min(150.0, rng.lognormvariate(math.log(14), 0.7)),
            plastic_rate=min(0.8, max(0.05, rng.betavariate(4, 8))),
            lens=rng.uniform(1.9, 2.6),
            inference_ms=rng.uniform(18.0, 45.0),
        )
        for i in range(1, count + 1)
    ]


def city_result(
    rng: random.Random,
    bin_: CityBin,
    labels: tuple[str, ...],
    model_info: dict[str, str],
    plastic_label: str,
    seen_at: datetime,
    inference_scale: float = 1.0,
) -> dict[str, Any]:
    """One item seen by ``bin_``: the true class wins with a probability drawn from the bin's
    lens (uncertain below MIN_CONFIDENCE), numbered after the bin's previous result."""
    plastic = rng.random() < bin_.plastic_rate
    winner = 0.5 + 0.5 * rng.betavariate(bin_.lens, 1.3)
    others = max(1, len(labels) - 1)
    probabilities = [
        winner if (label == plastic_label) == plastic else (1.0 - winner) / others for label in labels
    ]
    bin_.sent += 1
    return make_result(
        labels,
        probabilities,
        model_info,
        max(1.0, rng.gauss(bin_.inference_ms * inference_scale, 3.0 * inference_scale)),
        seen_at=seen_at,
        min_confidence=MIN_CONFIDENCE,
        frames=rng.choice((1, 1, 2, 3)),
        device_id=bin_.device_id,
        event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        seq=bin_.sent,
    )


def item_times(rng: random.Random, bin_: CityBin, start_ms: int, end_ms: int) -> list[int]:
    """When ``bin_`` sees items between two times (epoch ms), hour by hour with the day's rhythm
    (UTC hours stand for local ones)."""
    times = []
    hour_start = start_ms - start_ms % HOUR_MS
    while hour_start < end_ms:
        hour = datetime.fromtimestamp(hour_start / 1000, tz=timezone.utc).hour
        for _ in range(poisson(rng, bin_.items_per_hour * rhythm(hour + 0.5))):
            at = hour_start + rng.randrange(HOUR_MS)
            if start_ms <= at < end_ms:
                times.append(at)
        hour_start += HOUR_MS
    return sorted(times)


def backfill_times(rng: random.Random, count: int, hours: float, now_ms: int) -> list[int]:
    """``count`` times over the last ``hours``, denser at the day's busy hours, sorted."""
    span = int(hours * HOUR_MS)
    times: list[int] = []
    while len(times) < count:
        at = now_ms - span + rng.randrange(max(1, span))
        hour = datetime.fromtimestamp(at / 1000, tz=timezone.utc).hour
        if rng.random() < rhythm(hour + 0.5):
            times.append(at)
    return sorted(times)


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method below 30, a rounded normal above (the means here are small)."""
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1

"""Time windows and buckets as users type them: ``--since 24h``, ``--until 2024-05-01T12:00Z``,
``--bucket hour``; everything becomes integer epoch milliseconds (UTC)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from ecolens.core.errors import ConfigError

BUCKETS_MS = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
# What a datetime can show (years 1 to 9999): a window beyond it has no meaning.
MIN_MS = int(datetime(1, 1, 2, tzinfo=timezone.utc).timestamp() * 1000)
MAX_MS = int(datetime(9999, 12, 30, tzinfo=timezone.utc).timestamp() * 1000)


@dataclass(frozen=True)
class TimeWindow:
    since_ms: int
    until_ms: int

    def as_dict(self) -> dict[str, str]:
        return {"since": iso(self.since_ms), "until": iso(self.until_ms)}


def iso(epoch_ms: int | None) -> str | None:
    """Epoch ms -> RFC 3339 UTC ('Z'), the contract's own timestamp style."""
    if epoch_ms is None:
        return None
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_moment(text: str, now_ms: int, name: str) -> int:
    """``24h`` (that long before now), ``now``, or an ISO 8601 time (UTC when no zone)."""
    text = text.strip()
    if text.lower() == "now":
        return now_ms
    match = _DURATION.match(text)
    if match:
        back_ms = float(match.group(1)) * _UNIT_MS[match.group(2)]
        if not now_ms - back_ms >= MIN_MS:
            raise ConfigError(f"{name}: {text!r} reaches back before the year 1")
        return now_ms - int(back_ms)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"{name}: expected a duration like 90m, 24h, 7d or an ISO time, got {text!r}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    moment_ms = int(moment.timestamp() * 1000)
    if not MIN_MS <= moment_ms <= MAX_MS:
        raise ConfigError(f"{name}: {text!r} is outside the years 1 to 9999")
    return moment_ms


def parse_window(since: str, until: str = "now", now_ms: int | None = None) -> TimeWindow:
    now = int(time.time() * 1000) if now_ms is None else now_ms
    window = TimeWindow(parse_moment(since, now, "since"), parse_moment(until, now, "until"))
    if window.since_ms >= window.until_ms:
        raise ConfigError(f"since ({iso(window.since_ms)}) must be before until ({iso(window.until_ms)})")
    return window


def parse_bucket(name: str) -> int:
    try:
        return BUCKETS_MS[name.strip().lower()]
    except KeyError:
        raise ConfigError(f"bucket must be one of {', '.join(BUCKETS_MS)}, got {name!r}") from None

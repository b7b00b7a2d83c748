"""A bin's stats message (``<prefix>/<device_id>/stats``, QoS 0) as the aggregator takes it:
parsed as hostile input (anyone with broker access can publish there), the newest per bin kept
in memory and written beside the result batches by the writer thread. Stats are a gauge, not a
record: a lost or refused one is replaced by the next, so they stay off the results' exactly-once
path (no acknowledgement, no ``rejected`` row, one counter)."""

from __future__ import annotations

import math
import threading

from ecolens.fleet.payload import MAX_KEY_CHARS, PayloadError, decode_payload, storable_string
from ecolens.fleet.storage.binstats import BinStats

MAX_STATS_BYTES = 16 * 1024  # a daemon's stats are ~700 bytes

# figure -> (integer?, highest plausible value): anything else is not what a daemon sends
LIMITS: dict[str, tuple[bool, float]] = {
    "uptime_s": (False, 1e10),
    "inference_ms_p95": (False, 1e7),
    "queue_depth": (True, 2**53),
    "queue_dropped": (True, 2**53),
    "cpu_percent": (False, 1e4),
    "rss_mb": (False, 1e7),
    "fps": (False, 1e5),
}


def _figure(name: str, value: object) -> float | int | None:
    if value is None:
        return None
    integer, highest = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PayloadError(f"{name} is not a number")
    if integer and not (isinstance(value, int) or float(value).is_integer()):
        raise PayloadError(f"{name} is not a whole number")
    if not math.isfinite(value) or not 0 <= value <= highest:
        raise PayloadError(f"{name} {value!r} is out of range (0 to {highest:g})")
    return int(value) if integer else float(value)


def parse_stats(device_id: str, payload: bytes, received_ms: int) -> BinStats:
    """The figures the fleet shows; raises PayloadError with the reason. Fields it does not
    show are ignored (older and newer daemons send more or fewer)."""
    storable_string(device_id, "device id in the topic", MAX_KEY_CHARS)
    _, value = decode_payload(payload, MAX_STATS_BYTES)
    if not isinstance(value, dict):
        raise PayloadError("stats are not a JSON object")
    return BinStats(device_id, received_ms, **{name: _figure(name, value.get(name)) for name in LIMITS})


class LatestStats:
    """The newest stats per bin not yet written; the MQTT thread puts, the writer takes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, BinStats] = {}

    def put(self, stats: BinStats) -> None:
        with self._lock:
            self._pending[stats.device_id] = stats

    def take(self) -> list[BinStats]:
        with self._lock:
            taken, self._pending = list(self._pending.values()), {}
        return taken

    def give_back(self, stats: list[BinStats]) -> None:
        """A write failed: keep them unless a newer one arrived meanwhile."""
        with self._lock:
            for item in stats:
                self._pending.setdefault(item.device_id, item)

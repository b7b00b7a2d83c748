"""Per-client request rate limit (moving window, in this worker's memory) using `limits`."""

from __future__ import annotations

import math
import time

from ecolens.edge.api.errors import RateLimited
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class RateLimit:
    """``rate`` like ``"600/minute"`` or ``"10/second;600/minute"``; empty disables."""

    def __init__(self, rate: str) -> None:
        self._items = parse_many(rate) if rate.strip() else []
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    @property
    def enabled(self) -> bool:
        """False when no rate is set (then nothing is counted)."""
        return bool(self._items)

    def check(self, client: str) -> None:
        """Count one request for ``client``; raise 429 with Retry-After when over the limit."""
        for item in self._items:
            if not self._limiter.hit(item, "predict", client):
                reset_at, _remaining = self._limiter.get_window_stats(item, "predict", client)
                retry = max(1, math.ceil(reset_at - time.time()))
                raise RateLimited(
                    f"rate limit {item} exceeded; retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                )

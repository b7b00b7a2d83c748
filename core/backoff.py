"""The one retry policy: camera reopens, MQTT reconnects and storage retries all back off alike."""

from __future__ import annotations


class Backoff:
    """min, 2*min, 4*min ... capped at max; reset after a success."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.current = minimum

    def next(self) -> float:
        delay = self.current
        self.current = min(self.current * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self.current = self.minimum

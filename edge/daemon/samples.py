"""Samples for labelling: every uncertain item and a random share of the rest, as the crop that
was classified plus its result, queued on the daemon's on-disk queue (QoS 1, so an outage loses
nothing) under a bytes-per-hour budget (so samples never crowd out results).

Payload on ``<prefix>/<device_id>/sample``: JSON ``{"result": <contract result>, "jpeg": <base64>}``.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from collections import deque

import cv2
import numpy as np
from ecolens.core.wire import SAMPLE
from ecolens.edge.daemon.config.samples import SamplesSection
from ecolens.edge.daemon.store import ResultQueue

log = logging.getLogger("ecolens.daemon.samples")
HOUR_S = 3600.0


def encode_crop(rgb: np.ndarray, max_side: int, quality: int) -> bytes:
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    if not ok:
        raise OSError("JPEG encoding failed")
    return encoded.tobytes()


class SampleKeeper:
    """Decides which items become samples and queues them within the hourly byte budget."""

    def __init__(
        self, settings: SamplesSection, store: ResultQueue, topic: str, seed: int | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.topic = topic
        self.random = random.Random(seed)
        self.sent: deque[tuple[float, int]] = deque()  # (monotonic time, bytes) within the last hour
        self.queued = 0
        self.over_budget = 0

    def wanted(self, result: dict) -> bool:
        return bool(result.get("uncertain")) or self.random.random() < self.settings.random_share

    def spent(self, now: float) -> int:
        while self.sent and now - self.sent[0][0] >= HOUR_S:
            self.sent.popleft()
        return sum(size for _, size in self.sent)

    def offer(self, rgb: np.ndarray, result: dict) -> bool:
        """Queue ``rgb`` as a sample if it is wanted and fits the budget; never raises."""
        if not self.wanted(result):
            return False
        try:
            jpeg = encode_crop(rgb, self.settings.max_side, self.settings.quality)
        except (OSError, cv2.error) as exc:
            log.error("sample not encoded: %s", exc)
            return False
        payload = json.dumps({"result": result, "jpeg": base64.b64encode(jpeg).decode()})
        now = time.monotonic()
        if self.spent(now) + len(payload) > self.settings.max_bytes_per_hour:
            self.over_budget += 1
            return False
        self.sent.append((now, len(payload)))
        self.store.put(f"{result['event_id']}/{SAMPLE}", self.topic, payload, 1)
        self.queued += 1
        return True

"""Frames in, item results out: gate -> tracker -> crop -> classify a few frames -> combine
into one contract result (through the shared Classifier, never a second result builder)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from ecolens.core.classifier import Classifier
from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.motion import Box, PresenceGate, crop_box, roi_pixels
from ecolens.edge.daemon.sources.base import Frame
from ecolens.edge.daemon.tracker import ItemTracker, Step


@dataclass
class ItemResult:
    """One published item: the contract result plus what audits and latency need."""

    result: dict[str, Any]
    image: np.ndarray  # the RGB crop that was classified (last frame)
    read_at: float  # monotonic time the deciding frame was read


@dataclass
class _Collected:
    classifier: Classifier | None = None  # the model that answers for every frame collected
    probabilities: list[np.ndarray] = field(default_factory=list)
    inference_ms: float = 0.0
    seen_at: datetime | None = None
    image: np.ndarray | None = None


class ItemPipeline:
    """``process(frame)`` returns the results that frame completes (usually none)."""

    def __init__(
        self,
        classifier: Callable[[], Classifier],
        detect: DetectSection,
        device_id: str,
        source_name: str,
    ) -> None:
        self.classifier = classifier
        self.device_id = device_id
        self.source_name = source_name
        self.frames_classified = 0
        self.skipped_uncertain = 0
        self.last_box: Box | None = None  # the current item's box (the bin page draws it)
        self.configure(detect)

    def configure(self, detect: DetectSection) -> None:
        """New detection settings (on reload): the gate and tracker start afresh."""
        self.detect = detect
        self.gate = PresenceGate(detect)
        self.tracker = ItemTracker(detect)
        self._collected = _Collected()
        self._frame_index = 0
        self._last_label: str | None = None

    def process(self, frame: Frame) -> list[ItemResult]:
        if frame.still:
            return self._still(frame)
        if self.detect.mode == "continuous":
            return self._continuous(frame)
        observation = self.gate.observe(frame, learn=self.tracker.learning)
        self.last_box = observation.box
        step = self.tracker.update(observation, frame.t)
        if step in (Step.COLLECT, Step.COMPLETE):
            self._collect(frame, observation.box)
        elif step == Step.ABANDON:
            self._collected = _Collected()
        elif step == Step.ABSORB:
            self.gate.absorb(frame)
            self._collected = _Collected()
        if step != Step.COMPLETE:
            return []
        collected, self._collected = self._collected, _Collected()
        return self._emit(collected, frame, source=self.source_name)

    def _crop(self, frame: Frame, box: Box | None) -> np.ndarray:
        rgb = frame.rgb()
        if self.detect.crop == "item" and box is not None:
            x0, y0, x1, y1 = crop_box(rgb.shape, box, self.detect.crop_margin)
        else:
            x0, y0, x1, y1 = roi_pixels(rgb.shape, self.detect.roi)
        return rgb[y0:y1, x0:x1]

    def _collect(self, frame: Frame, box: Box | None) -> None:
        image = self._crop(frame, box)
        classifier = self.classifier()
        if self._collected.classifier not in (None, classifier):
            # The model changed mid-item (hot reload, rollout): start the item again, so that a
            # result is stamped with the model whose answers it combines.
            self._collected = _Collected()
        probabilities, elapsed_ms = classifier.predict(image)
        self.frames_classified += 1
        collected = self._collected
        collected.classifier = classifier
        collected.probabilities.append(probabilities)
        collected.inference_ms += elapsed_ms
        collected.seen_at = collected.seen_at or frame.seen_at
        collected.image = image

    def _emit(self, collected: _Collected, frame: Frame, source: str) -> list[ItemResult]:
        stacked = np.stack(collected.probabilities)
        scores = stacked.max(axis=0) if self.detect.combine == "max" else stacked.mean(axis=0)
        if self.detect.combine == "max":
            scores = scores / scores.sum()
        classifier = collected.classifier or self.classifier()
        result = classifier.result(
            scores,
            collected.inference_ms,
            seen_at=collected.seen_at,
            frames=len(collected.probabilities),
            device_id=self.device_id,
            event_id=str(uuid.uuid4()),
            source=source,
        )
        if result["uncertain"] and not self.detect.publish_uncertain:
            self.skipped_uncertain += 1
            return []
        assert collected.image is not None
        return [ItemResult(result, collected.image, frame.read_at)]

    def _still(self, frame: Frame) -> list[ItemResult]:
        """A still image from a folder is one whole item."""
        collected = _Collected()
        self._collected_from(collected, frame, frame.rgb())
        return self._emit(collected, frame, source=frame.path or self.source_name)

    def _continuous(self, frame: Frame) -> list[ItemResult]:
        """Every Nth frame is classified; a result goes out when the label changes."""
        self._frame_index += 1
        if (self._frame_index - 1) % self.detect.every_n:
            return []
        collected = _Collected()
        self._collected_from(collected, frame, self._crop(frame, None))
        assert collected.classifier is not None
        label = collected.classifier.labels[int(np.argmax(collected.probabilities[0]))]
        if label == self._last_label:
            return []
        self._last_label = label
        return self._emit(collected, frame, source=self.source_name)

    def _collected_from(self, collected: _Collected, frame: Frame, image: np.ndarray) -> None:
        collected.classifier = self.classifier()
        probabilities, elapsed_ms = collected.classifier.predict(image)
        self.frames_classified += 1
        collected.probabilities.append(probabilities)
        collected.inference_ms = elapsed_ms
        collected.seen_at = frame.seen_at
        collected.image = image

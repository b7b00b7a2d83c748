"""Presence and motion gating on a small grey copy of each frame, so idle frames cost almost
nothing and never reach the model.

Presence: pixels that differ from a learned empty-scene background. Motion: pixels that differ
from the previous frame. The background follows slow light changes only while the scene is
empty (the tracker decides), so a resting item is never learned into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.sources.base import Frame

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in full-frame pixels


@dataclass(frozen=True)
class Observation:
    area: float  # fraction of the ROI unlike the background
    motion: float  # fraction of the ROI that changed since the previous frame
    box: Box | None  # bounding box of the unlike-background pixels
    present: bool


def roi_pixels(shape: tuple[int, ...], roi: tuple[float, float, float, float] | None) -> Box:
    """The ROI fractions as a pixel box of a frame of ``shape``."""
    height, width = shape[:2]
    if roi is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = roi
    return int(x0 * width), int(y0 * height), max(1, int(x1 * width)), max(1, int(y1 * height))


class PresenceGate:
    def __init__(self, detect: DetectSection) -> None:
        self.detect = detect
        self._background: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._kernel = np.ones((3, 3), np.uint8)

    def _small_grey(self, frame: Frame) -> tuple[np.ndarray, Box, float]:
        roi = roi_pixels(frame.pixels.shape, self.detect.roi)
        x0, y0, x1, y1 = roi
        region = frame.pixels[y0:y1, x0:x1]
        scale = min(1.0, self.detect.analysis_width / max(1, x1 - x0))
        if scale < 1.0:
            region = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if region.ndim == 3:
            code = cv2.COLOR_RGB2GRAY if frame.order == "RGB" else cv2.COLOR_BGR2GRAY
            region = cv2.cvtColor(region, code)
        return cv2.GaussianBlur(region, (5, 5), 0), roi, scale

    def observe(self, frame: Frame, learn: bool) -> Observation:
        """Compare ``frame`` with the background; ``learn`` lets the background adapt."""
        grey, roi, scale = self._small_grey(frame)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            self._previous = grey
            return Observation(0.0, 0.0, None, False)
        threshold = self.detect.pixel_threshold
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        mask = cv2.morphologyEx((diff > threshold).astype(np.uint8), cv2.MORPH_OPEN, self._kernel)
        area = float(mask.mean())
        motion = float((cv2.absdiff(grey, self._previous) > threshold).mean())
        self._previous = grey
        if learn:
            cv2.accumulateWeighted(grey, self._background, self.detect.background_rate)
        present = area >= self.detect.min_area
        box = None
        if present:
            x, y, w, h = cv2.boundingRect(cv2.findNonZero(mask))
            box = (
                roi[0] + int(x / scale),
                roi[1] + int(y / scale),
                roi[0] + int((x + w) / scale),
                roi[1] + int((y + h) / scale),
            )
        return Observation(area, motion, box, present)

    def absorb(self, frame: Frame) -> None:
        """Make the current scene the new background (an item that never leaves)."""
        grey, _, _ = self._small_grey(frame)
        self._background = grey.astype(np.float32)
        self._previous = grey


def crop_box(shape: tuple[int, ...], box: Box, margin: float) -> Box:
    """``box`` grown by ``margin`` x its size on each side, clamped to the frame."""
    height, width = shape[:2]
    x0, y0, x1, y1 = box
    dx, dy = int((x1 - x0) * margin), int((y1 - y0) * margin)
    return max(0, x0 - dx), max(0, y0 - dy), min(width, x1 + dx), min(height, y1 + dy)

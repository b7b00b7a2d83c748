"""The one frame-source interface every camera, stream, file and image folder follows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import cv2
import numpy as np
from ecolens.core.errors import EcoLensError


class SourceError(EcoLensError):
    """A source cannot be opened or stopped delivering frames."""


@dataclass
class Frame:
    """One image from a source. ``t`` is stream time in seconds (media time for files, the
    monotonic clock for live sources), so thresholds in seconds hold at any playback speed."""

    pixels: np.ndarray
    order: str  # "BGR" (OpenCV, picamera2 RGB888) or "RGB"
    t: float
    seen_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    read_at: float = field(default_factory=time.monotonic)
    path: str | None = None  # set for still images from a folder
    _rgb: np.ndarray | None = field(default=None, repr=False)

    @property
    def still(self) -> bool:
        """A stand-alone image (folder source): one item per frame, no motion gating."""
        return self.path is not None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            if self.order == "RGB":
                self._rgb = self.pixels
            else:
                from ecolens.core.preprocess import from_bgr

                self._rgb = from_bgr(self.pixels)
        return self._rgb

    def grey(self) -> np.ndarray:
        if self.pixels.ndim == 2:
            return self.pixels
        code = cv2.COLOR_RGB2GRAY if self.order == "RGB" else cv2.COLOR_BGR2GRAY
        return cv2.cvtColor(self.pixels, code)


class FrameSource(Protocol):
    """``open`` then ``read`` until it returns None (end of a file or folder); both raise
    SourceError when the device or stream fails. ``live`` sources are reopened on failure."""

    name: str
    live: bool

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

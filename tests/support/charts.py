"""What a benchmark's --plot must have drawn: a real PNG of a sensible size with bars in it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

GREEN = (75, 158, 132)  # train/plots.py: a measured bar / the first series
GREY = (153, 153, 153)  # the baseline's bars


def colour_pixels(picture: np.ndarray, rgb: tuple[int, int, int]) -> int:
    bgr = np.array(rgb[::-1], dtype=np.int16)
    return int((np.abs(picture.astype(np.int16) - bgr).max(axis=2) <= 2).sum())


def assert_chart(path: Path, min_height: int = 400) -> np.ndarray:
    """A PNG (not another format under that name), wider than 900 px (two panels side by side),
    at least ``min_height`` tall, not blank, with green bars and grey baseline bars."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    picture = cv2.imread(str(path))
    assert picture is not None
    height, width = picture.shape[:2]
    assert width > 900 and height >= min_height, (width, height)
    assert picture.std() > 20, "blank picture"
    assert colour_pixels(picture, GREEN) > 2000, "no measured bars"
    assert colour_pixels(picture, GREY) > 500, "no baseline bars"
    return picture

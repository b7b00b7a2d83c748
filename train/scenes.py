"""Backgrounds, framing and lighting for synthetic scenes around a masked TrashNet item.

Shared by training-time domain randomisation (train/augment.py) and the fixed out-of-domain
evaluation (train/ood.py), so both build scenes the same way and differ only in what they pick.
"""

from __future__ import annotations

import cv2
import numpy as np
from ecolens.train.board import composite


def solid(height: int, width: int, colour: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), (height, width, 3)).copy()


def gradient(height: int, width: int, start: np.ndarray, end: np.ndarray, angle: float) -> np.ndarray:
    """Linear ramp from ``start`` to ``end`` colour along ``angle`` (radians)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs / max(1, width - 1) * np.cos(angle) + ys / max(1, height - 1) * np.sin(angle)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return start * (1.0 - t[..., None]) + end * t[..., None]


def noise(
    height: int, width: int, rng: np.random.Generator, grain: int, contrast: float, colourful: float = 0.2
) -> np.ndarray:
    """Smooth noise around a random base colour (concrete, fabric, wood-like blotches): mostly
    brightness, with ``colourful`` times as much independent colour."""
    shape = (max(2, height // grain), max(2, width // grain))
    small = rng.uniform(-127.5, 127.5, (*shape, 1)) + colourful * rng.uniform(-127.5, 127.5, (*shape, 3))
    field = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    base = rng.uniform(30, 220, 3).astype(np.float32)
    return np.clip(base + field * contrast, 0, 255)


def clutter(height: int, width: int, rng: np.random.Generator, shapes: int) -> np.ndarray:
    """A textured surface with random rectangles, ellipses and lines (other things in the bin)."""
    canvas = noise(height, width, rng, grain=24, contrast=0.4)
    for _ in range(shapes):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(max(4, width // 20), max(5, width // 5)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(canvas, (x, y), (x + size, y + size // 2), colour, -1)
        elif kind == 1:
            cv2.ellipse(
                canvas, (x, y), (size // 2, size // 3), float(rng.uniform(0, 180)), 0, 360, colour, -1
            )
        else:
            end = (x + int(rng.integers(-size, size)), y + int(rng.integers(-size, size)))
            cv2.line(canvas, (x, y), end, colour, int(rng.integers(1, 4)))
    return canvas


def place(
    rgb: np.ndarray,
    alpha: np.ndarray,
    canvas: np.ndarray,
    item_fraction: float,
    centre: tuple[float, float],
) -> np.ndarray:
    """Scale the photo so it covers ``item_fraction`` of the canvas area and composite its item
    (per ``alpha``) at ``centre`` (relative x, y); parts outside the canvas are cut off."""
    height, width = canvas.shape[:2]
    h, w = rgb.shape[:2]
    scale = np.sqrt(item_fraction * height * width / (h * w))
    new_w, new_h = max(2, round(w * scale)), max(2, round(h * scale))
    photo = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mask = cv2.resize(alpha, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    x0 = round(centre[0] * width - new_w / 2)
    y0 = round(centre[1] * height - new_h / 2)
    # Intersection of the placed photo with the canvas.
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + new_w), min(height, y0 + new_h)
    out = canvas.astype(np.float32).copy()
    if cx1 > cx0 and cy1 > cy0:
        region = out[cy0:cy1, cx0:cx1]
        out[cy0:cy1, cx0:cx1] = composite(
            photo[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0],
            mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0],
            region,
        )
    return np.clip(out, 0, 255).astype(np.uint8)


def colour_cast(rgb: np.ndarray, gains: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """Per-channel gains (white balance) and a gamma (exposure) on 0..255 pixels."""
    x = (rgb.astype(np.float32) / 255.0) ** gamma * 255.0
    return np.clip(x * np.asarray(gains, np.float32), 0, 255).astype(np.uint8)


def motion_blur(rgb: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear motion blur of ``length`` pixels along ``angle`` degrees (an item dropped past the camera)."""
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return cv2.filter2D(rgb, -1, kernel / max(1e-6, kernel.sum()))


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def sensor_noise(rgb: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)

"""A deterministic out-of-domain evaluation set: validation photos changed the way real bins
differ from TrashNet's studio (dark chamber with a lit strip, an item small in a 16:9 frame,
coloured backgrounds, clutter, colour casts, motion blur, JPEG noise).

TrashNet validation cannot choose between models that differ out of domain (they all score
alike on it); this set can. Every variant of a photo depends only on the photo and the variant's
name (a SHA-256 seed), so every run and machine builds the same images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import cv2
import numpy as np
from ecolens.train import scenes
from ecolens.train.board import item_alpha

# Frame of a 1280x720 camera, at a resolution that keeps TrashNet's 112 px items meaningful.
FRAME = (252, 448)  # height, width (16:9)


def variant_rng(key: str, variant: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{key}|{variant}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def dark_chamber(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A reverse-vending chamber: near-black walls, one lit strip behind the item, the item
    back-lit (its front darker), filling about a fifth of a 16:9 frame."""
    height, width = FRAME
    canvas = scenes.solid(height, width, rng.uniform(5, 25, 3))
    ys = np.arange(height, dtype=np.float32)[:, None]
    centre, spread = rng.uniform(0.35, 0.65) * height, rng.uniform(0.08, 0.18) * height
    strip = np.exp(-(((ys - centre) / spread) ** 2))[..., None] * rng.uniform(150, 235)
    canvas = np.clip(canvas + strip * np.array([1.0, 1.0, rng.uniform(0.85, 1.0)]), 0, 255)
    item = scenes.colour_cast(rgb, np.full(3, rng.uniform(0.3, 0.55)))
    return scenes.place(item, alpha, canvas, rng.uniform(0.3, 0.5), (rng.uniform(0.4, 0.6), 0.5))


def small_in_frame(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The item small and off-centre in a wide frame over a plain textured floor."""
    height, width = FRAME
    canvas = scenes.noise(height, width, rng, grain=int(rng.integers(6, 20)), contrast=0.25)
    return scenes.place(rgb, alpha, canvas, rng.uniform(0.08, 0.15), tuple(rng.uniform(0.3, 0.7, 2)))


def coloured_background(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The white board replaced by a strongly coloured surface."""
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(150, 256), rng.integers(110, 230)]]])
    colour = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    canvas = scenes.solid(*rgb.shape[:2], colour)
    return scenes.place(rgb, alpha, canvas, 1.0, (0.5, 0.5))


def clutter(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Other things around the item: random shapes and lines on a textured surface."""
    canvas = scenes.clutter(168, 224, rng, shapes=int(rng.integers(10, 20)))
    return scenes.place(rgb, alpha, canvas, rng.uniform(0.35, 0.5), tuple(rng.uniform(0.35, 0.65, 2)))


CASTS = (
    np.array([1.25, 1.0, 0.65]),  # tungsten
    np.array([0.85, 1.15, 0.8]),  # green fluorescent tube
    np.array([0.75, 0.95, 1.3]),  # cold LED / shade
)


def colour_cast(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strong white-balance error and under-exposure over the whole photo."""
    return scenes.colour_cast(rgb, CASTS[int(rng.integers(0, len(CASTS)))], gamma=rng.uniform(1.4, 2.0))


def motion_blur(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An item moving past the camera during the exposure."""
    return scenes.motion_blur(rgb, int(rng.integers(5, 10)), rng.uniform(0, 180))


def jpeg_noise(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cheap sensor in low light, then heavy JPEG compression."""
    noisy = scenes.sensor_noise(rgb, rng, rng.uniform(10, 16))
    return scenes.jpeg(noisy, int(rng.integers(8, 18)))


Transform = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]
VARIANTS: dict[str, Transform] = {
    "dark_chamber": dark_chamber,
    "small_in_frame": small_in_frame,
    "coloured_background": coloured_background,
    "clutter": clutter,
    "colour_cast": colour_cast,
    "motion_blur": motion_blur,
    "jpeg_noise": jpeg_noise,
}


def ood_image(rgb: np.ndarray, key: str, variant: str) -> np.ndarray:
    """One variant of one photo; ``key`` (e.g. the photo's path relative to the dataset) seeds it."""
    return VARIANTS[variant](rgb, item_alpha(rgb), variant_rng(key, variant))


def ood_variants(rgb: np.ndarray, key: str) -> dict[str, np.ndarray]:
    """Every variant of one photo (RGB uint8, any size), keyed by variant name; ``key`` (e.g. the
    photo's path relative to the dataset) seeds them."""
    alpha = item_alpha(rgb)
    return {name: transform(rgb, alpha, variant_rng(key, name)) for name, transform in VARIANTS.items()}

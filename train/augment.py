"""Training-time domain randomisation: the TrashNet item in front of other backgrounds, smaller
in the frame, darker, colour-cast and blurred, so the classifier cannot key on the white board
and studio light (what made the previous model fail in dark bins).

Deliberately different from the out-of-domain evaluation (train/ood.py): no lit strip, no
clutter, no motion blur, no JPEG; the evaluation then tests generalisation, not memorisation.
"""

from __future__ import annotations

import cv2
import numpy as np
from ecolens.train import scenes

ASPECTS = (4 / 3, 16 / 9, 1.0)
CANVAS_WIDTH = 224


def random_background(height: int, width: int, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dark, solid, gradient or textured background, or (one time in five) the board's own colour."""
    kind = rng.choice(("dark", "solid", "gradient", "noise", "board"), p=(0.25, 0.2, 0.2, 0.2, 0.15))
    if kind == "dark":
        return scenes.noise(height, width, rng, grain=int(rng.integers(8, 40)), contrast=0.1) * rng.uniform(
            0.05, 0.3
        )
    if kind == "solid":
        return scenes.solid(height, width, rng.uniform(0, 255, 3))
    if kind == "gradient":
        return scenes.gradient(
            height, width, rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform(0, 6.3)
        )
    if kind == "noise":
        return scenes.noise(
            height,
            width,
            rng,
            grain=int(rng.integers(4, 40)),
            contrast=rng.uniform(0.2, 0.8),
            colourful=rng.uniform(0, 0.5),
        )
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float32)
    return scenes.solid(height, width, np.median(border, axis=0))


def randomise(rgb: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random training view of a photo (RGB uint8) whose item mask is ``alpha``."""
    if rng.random() < 0.5:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    if rng.random() < 0.5:
        rgb, alpha = rgb[::-1], alpha[::-1]
    rgb, alpha = np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)
    if rng.random() < 0.8:
        if rng.random() < 0.6:  # zoom out into a wider frame
            aspect = ASPECTS[int(rng.integers(0, len(ASPECTS)))]
            height, width = round(CANVAS_WIDTH / aspect), CANVAS_WIDTH
            fraction, centre = rng.uniform(0.15, 0.8), tuple(rng.uniform(0.3, 0.7, 2))
        else:
            (height, width), fraction, centre = rgb.shape[:2], 1.0, (0.5, 0.5)
        canvas = random_background(height, width, rgb, rng)
        rgb = scenes.place(rgb, alpha, canvas, fraction, centre)
    gamma = rng.uniform(1.0, 2.2) if rng.random() < 0.4 else rng.uniform(0.8, 1.0)
    gains = rng.uniform(0.7, 1.3, 3) if rng.random() < 0.5 else np.ones(3)
    rgb = scenes.colour_cast(rgb, gains * rng.uniform(0.8, 1.15), gamma)
    if rng.random() < 0.3:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.2:
        rgb = scenes.sensor_noise(rgb, rng, rng.uniform(3, 8))
    return rgb

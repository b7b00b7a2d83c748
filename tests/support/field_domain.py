"""A deterministic "other camera" made from the shipped TrashNet photos.

TrashNet items lie on a white board, large and centred, in daylight. A bin's camera sees a
small item on a dark bin floor under a warm lamp. This turns each photo into such a frame:
the white board becomes a dark, noisy floor, the item shrinks into a larger frame at an
off-centre spot, the light gets a yellow cast and a lower exposure. Everything is seeded by
the file's name, so every run builds the same frames.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from ecolens.core.preprocess import find_images, load_image

FRAME = (240, 320)  # height, width of the synthetic camera
CAST = np.array([1.10, 0.92, 0.62], dtype=np.float32)  # warm sodium-like lamp (RGB gains)


def seed_of(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def to_field_frame(rgb: np.ndarray, seed: int) -> np.ndarray:
    """One TrashNet photo -> one frame from the other camera (RGB uint8)."""
    rng = np.random.default_rng(seed)
    image = rgb.astype(np.float32)
    grey = image.mean(axis=2)
    spread = image.max(axis=2) - image.min(axis=2)
    board = (grey > 150) & (spread < 40)  # the bright, colourless board behind the item
    board = cv2.morphologyEx(board.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8)) > 0
    floor = rng.normal(38.0, 9.0, image.shape).astype(np.float32)
    image = np.where(board[..., None], floor, image * 0.8)

    height, width = FRAME
    scale = rng.uniform(0.45, 0.6) * min(height / rgb.shape[0], width / rgb.shape[1])
    item = cv2.resize(
        image, (int(rgb.shape[1] * scale), int(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
    frame = rng.normal(38.0, 9.0, (height, width, 3)).astype(np.float32)
    y0 = int(rng.integers(0, height - item.shape[0]))
    x0 = int(rng.integers(0, width - item.shape[1]))
    frame[y0 : y0 + item.shape[0], x0 : x0 + item.shape[1]] = item
    frame = frame * CAST * rng.uniform(0.75, 0.9)
    frame = cv2.GaussianBlur(frame, (3, 3), 0.8) + rng.normal(0.0, 4.0, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def build_field_domain(sources: list[Path], out: Path) -> Path:
    """Frames from every image below ``sources`` (class sub-folders), written as
    ``out/<class>/<source>_<name>.jpg``; returns ``out``."""
    for root in sources:
        for path in find_images(root):
            relative = path.relative_to(root)
            folder = relative.parts[0]
            target = out / folder / f"{root.name}_{path.stem}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            frame = to_field_frame(load_image(path), seed_of(relative.as_posix()))
            cv2.imwrite(str(target), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out

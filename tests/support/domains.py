"""Photo folders of a model's own domain, as a user would pass them to `--calibration`.

TrashNet is the only photo set here, so the other domains are made: a four-material waste set
(the shipped calibration folders of those materials and their mirror images) and a procedurally
drawn "dots vs bars" scene set that is clearly not waste. Both are optimistic proxies for real
users' photos (cleaner, more uniform, and the drawn scenes are easy to tell apart)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from ecolens.core.preprocess import find_images, load_image
from ecolens.models import calibration_dir, eval_dir

WASTE4 = ("cardboard", "plastic", "glass", "metal")
SHAPES = ("dots", "bars")


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])


def waste4(out: Path) -> Path:
    """out/<material>/*.jpg for cardboard, plastic, glass, metal (the shipped calibration photos
    of those materials, the eval folder's plastic photos, and every photo mirrored)."""
    sources = {m: find_images(calibration_dir() / m) for m in WASTE4}
    sources["plastic"] += find_images(eval_dir() / "plastic")
    for material, paths in sources.items():
        for path in paths:
            rgb = load_image(path)
            write_rgb(out / material / f"{path.parent.parent.name}_{path.stem}.jpg", rgb)
            write_rgb(out / material / f"{path.parent.parent.name}_{path.stem}_m.jpg", rgb[:, ::-1])
    return out


def seed_of(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def scene(kind: str, seed: int, size: int = 96) -> np.ndarray:
    """One drawn scene: a textured, shaded background with several round blobs (dots) or long
    rectangles (bars) in random colours."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    image = (top * (1 - ramp) + bottom * ramp) * np.ones((size, size, 3))
    image += rng.normal(0, 12, image.shape)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(float(c) for c in rng.uniform(0, 255, 3))
        x, y = (int(v) for v in rng.integers(8, size - 8, 2))
        if kind == "dots":
            cv2.circle(image, (x, y), int(rng.integers(5, 14)), colour, -1)
        else:
            length, width, angle = rng.integers(25, 60), rng.integers(3, 7), rng.uniform(0, 180)
            box = cv2.boxPoints(((x, y), (float(length), float(width)), float(angle))).astype(np.int32)
            cv2.fillPoly(image, [box], colour)
    return np.clip(image, 0, 255).astype(np.uint8)


def shapes(out: Path, per_class: int, salt: str = "") -> Path:
    """out/<dots|bars>/*.jpg: ``per_class`` drawn scenes of each kind (``salt`` draws others)."""
    for kind in SHAPES:
        for i in range(per_class):
            write_rgb(out / kind / f"{kind}_{salt}{i:04d}.jpg", scene(kind, seed_of(f"{kind}{salt}{i}")))
    return out


def labelled_photos(folder: Path, labels: tuple[str, ...]) -> tuple[list[Path], np.ndarray]:
    """Images in class sub-folders named like ``labels`` and their label indices."""
    paths = [p for p in find_images(folder) if p.parent.name in labels]
    return paths, np.array([labels.index(p.parent.name) for p in paths])

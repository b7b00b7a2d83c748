#!/usr/bin/env python3
"""Build the shipped sample clip: TrashNet validation photos appearing one by one on a plain
background at 640x480, as a bin camera would see items dropped in front of it.

Each item slides in from the top (motion), settles for about 1.5 s, is taken away, and the
empty background shows for about a second before the next one. The clip, a manifest of the
items with their true labels and timings, and the dataset's LICENSE go to --out.

    python scripts/make_sample_clip.py --data /work/shared/datasets/trashnet-112

Only images of the validation split are accepted (the reference model never trained on them).
The ITEMS below were checked to be classified correctly by the reference model when cropped
to the item (see docs/daemon.md, "Sample clip").
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 15
SCALE = 2  # 112x84 photos shown at 224x168
BACKGROUND_BGR = (70, 80, 45)  # dark teal bin floor, far from TrashNet's white poster board
LEAD_IN_FRAMES = 15  # empty scene first, for the background model
ENTER_FRAMES = 6  # sliding in from the top edge
SETTLE_FRAMES = 22  # still in place
LEAVE_FRAMES = 4  # sliding out sideways
GAP_FRAMES = 12  # empty scene between items

# Relative paths under the TrashNet folder, mixed plastic / non_plastic, validation split only.
ITEMS = (
    "plastic/plastic226.jpg",
    "glass/glass118.jpg",
    "plastic/plastic145.jpg",
    "metal/metal105.jpg",
    "cardboard/cardboard107.jpg",
    "plastic/plastic161.jpg",
    "paper/paper100.jpg",
    "plastic/plastic175.jpg",
    "trash/trash105.jpg",
    "plastic/plastic200.jpg",
)


def background() -> np.ndarray:
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[:] = BACKGROUND_BGR
    # A gentle vertical light gradient, like a lit bin interior.
    shade = np.linspace(-8, 8, HEIGHT, dtype=np.float32)[:, None, None]
    return np.clip(frame.astype(np.float32) + shade, 0, 255).astype(np.uint8)


def place(scene: np.ndarray, item: np.ndarray, x: int, y: int) -> np.ndarray:
    """Paste ``item`` with its top-left corner at (x, y), clipped to the scene."""
    out = scene.copy()
    h, w = item.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(WIDTH, x + w), min(HEIGHT, y + h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = item[y0 - y : y1 - y, x0 - x : x1 - x]
    return out


def item_frames(scene: np.ndarray, item: np.ndarray, index: int) -> list[np.ndarray]:
    h, w = item.shape[:2]
    # Rest positions vary a little so items do not land on the same pixels every time.
    rest_x = (WIDTH - w) // 2 + (index % 3 - 1) * 60
    rest_y = (HEIGHT - h) // 2 + (index % 2) * 30
    frames = []
    for step in range(1, ENTER_FRAMES + 1):
        y = -h + (rest_y + h) * step // ENTER_FRAMES
        frames.append(place(scene, item, rest_x, y))
    frames.extend(place(scene, item, rest_x, rest_y) for _ in range(SETTLE_FRAMES))
    for step in range(1, LEAVE_FRAMES + 1):
        x = rest_x + (WIDTH - rest_x) * step // LEAVE_FRAMES
        frames.append(place(scene, item, x, rest_y))
    frames.extend(scene.copy() for _ in range(GAP_FRAMES))
    return frames


def build(data: Path, out: Path, items: tuple[str, ...]) -> dict:
    from ecolens.train.dataset import scan

    samples = {s.relative: s for s in scan(data)}
    scene = background()
    out.mkdir(parents=True, exist_ok=True)
    clip_path = out / "items.mp4"
    writer = cv2.VideoWriter(str(clip_path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v video here")
    manifest_items = []
    frame_count = 0
    for _ in range(LEAD_IN_FRAMES):
        writer.write(scene)
        frame_count += 1
    for index, relative in enumerate(items):
        sample = samples.get(relative)
        if sample is None:
            raise SystemExit(f"{relative} is not in {data}")
        if sample.split != "validation":
            raise SystemExit(f"{relative} is in the training split; pick a validation image")
        photo = cv2.imread(str(sample.path), cv2.IMREAD_COLOR)
        photo = cv2.resize(photo, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_CUBIC)
        start = frame_count
        for frame in item_frames(scene, photo, index):
            writer.write(frame)
            frame_count += 1
        manifest_items.append(
            {
                "index": index + 1,
                "source": f"trashnet/{relative}",
                "material": sample.folder,
                "label": sample.label,
                "enters_s": round(start / FPS, 3),
                "settled_s": round((start + ENTER_FRAMES) / FPS, 3),
                "leaves_s": round((start + ENTER_FRAMES + SETTLE_FRAMES) / FPS, 3),
            }
        )
    writer.release()
    manifest = {
        "clip": clip_path.name,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "frames": frame_count,
        "duration_s": round(frame_count / FPS, 3),
        "dataset": "TrashNet (Gary Thung, Mindy Yang, 2017), MIT License, see LICENSE",
        "items": manifest_items,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.copyfile(data / "LICENSE", out / "LICENSE")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/datasets/trashnet-112"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent.parent / "models/samples/clip"
    )
    parser.add_argument("items", nargs="*", help="relative image paths (default: ITEMS)")
    args = parser.parse_args()
    manifest = build(args.data, args.out, tuple(args.items) or ITEMS)
    size = (args.out / manifest["clip"]).stat().st_size
    print(f"{args.out / manifest['clip']}: {manifest['frames']} frames, {size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

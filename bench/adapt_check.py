"""`ecolens benchmark adapt`: how far `ecolens adapt` gets on one consistent "other camera",
measured the way issue 12 states its target (a third of the frames labelled, balanced accuracy
on the other two thirds, no loss on held-out TrashNet beyond one point).

The camera is made from TrashNet *validation* photos (the split of train/dataset.py: the base
model never trained on them) with one fixed combination of train/ood.py's transforms: a dark
chamber with a lit strip, the item small in a 16:9 frame, a warm colour cast and under-exposure,
sensor noise and JPEG. A third of the frames (a hash of each path) is written as labelled class
folders and given to `adapt`; the other two thirds and the same photos' TrashNet originals are
only evaluated, never fitted on or used to choose anything. The base images mixed in are the
TrashNet training split (what the base model was trained on).

``--labelled-percent`` labels more or fewer of the frames (the issue's "a few hundred" labelled
frames are about two thirds of our 395); ``--camera small-blurred`` is a second camera, unlike
the first, to check that what helps one does not just fit it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

CAST = np.array([1.2, 1.0, 0.7])  # the camera's warm white balance (RGB gains)
GAMMA = 1.3  # and its under-exposure
COLD_CAST = np.array([0.8, 1.0, 1.25])  # the second camera's cold LEDs
LABELLED_PERCENT = 34  # "a third of them labelled" (the default of --labelled-percent)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trashnet", type=Path, required=True, help="TrashNet class folders (e.g. trashnet-112)"
    )
    parser.add_argument("--base", type=Path, help="the .h5 to adapt (default: the shipped reference model)")
    parser.add_argument(
        "--work", type=Path, required=True, help="folder for the frames and the adapted model"
    )
    parser.add_argument(
        "--base-images", type=int, default=0, help="mix in only this many training photos (0 = all of them)"
    )
    parser.add_argument(
        "--labelled-percent",
        type=int,
        default=LABELLED_PERCENT,
        help="share of the 395 camera frames given to adapt as labelled (default: a third; the "
        "issue's 'a few hundred' labelled frames are about two thirds of ours)",
    )
    parser.add_argument(
        "--camera", choices=sorted(CAMERAS), default="dark-chamber", help="which synthetic camera"
    )
    parser.add_argument(
        "--refit-all", action=argparse.BooleanOptionalAction, default=True, help="adapt --refit-all"
    )


def dark_chamber_camera(rgb: np.ndarray, key: str) -> np.ndarray:
    """One photo as the dark-chamber camera sees it (deterministic per ``key``)."""
    from ecolens.train import ood, scenes
    from ecolens.train.board import item_alpha

    rng = ood.variant_rng(key, "adapt_check_camera")
    frame = ood.dark_chamber(rgb, item_alpha(rgb), rng)
    frame = scenes.colour_cast(frame, CAST, gamma=GAMMA)
    return scenes.jpeg(scenes.sensor_noise(frame, rng, 6.0), 75)


def small_blurred_camera(rgb: np.ndarray, key: str) -> np.ndarray:
    """A second camera, unlike the first: the item small and off-centre on a textured floor in a
    16:9 frame (a bin whose crop failed), cold-LED white balance, motion blur, strong JPEG."""
    from ecolens.train import ood, scenes
    from ecolens.train.board import item_alpha

    rng = ood.variant_rng(key, "camera_b")
    frame = ood.small_in_frame(rgb, item_alpha(rgb), rng)
    frame = scenes.colour_cast(frame, COLD_CAST, gamma=1.1)
    frame = scenes.motion_blur(frame, 7, float(rng.uniform(0, 180)))
    return scenes.jpeg(frame, 60)


CAMERAS = {"dark-chamber": dark_chamber_camera, "small-blurred": small_blurred_camera}


def labelled_part(relative: str, percent: int) -> bool:
    return int(hashlib.sha256(f"camera|{relative}".encode()).hexdigest(), 16) % 100 < percent


def write(image: np.ndarray, path: Path) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])


def build(
    trashnet: Path, work: Path, base_images: int, labelled_percent: int, camera: str = "dark-chamber"
) -> dict[str, Path]:
    """labelled / hidden camera frames, the hidden photos' originals, the training photos."""
    from ecolens.core.preprocess import load_image
    from ecolens.train.dataset import scan

    folders = {name: work / name for name in ("labelled", "hidden", "trashnet-hidden", "trashnet-train")}
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    samples = scan(trashnet)
    train = [s for s in samples if s.split == "train"]
    if base_images:
        train = sorted(train, key=lambda s: hashlib.sha256(s.relative.encode()).hexdigest())[:base_images]
    for s in train:
        target = folders["trashnet-train"] / s.folder / s.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(s.path.resolve(), target)
    for s in (s for s in samples if s.split == "validation"):
        rgb = load_image(s.path)
        part = "labelled" if labelled_part(s.relative, labelled_percent) else "hidden"
        # a name of its own: the same relative path would fall in the same hash buckets as the photo
        write(CAMERAS[camera](rgb, s.relative), folders[part] / s.folder / f"{s.path.stem}-camera.jpg")
        if part == "hidden":
            target = folders["trashnet-hidden"] / s.folder / s.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(s.path.resolve(), target)
    return folders


def score(model: Path, folder: Path) -> float:
    """Balanced accuracy of a .h5 on class folders."""
    from ecolens.convert.h5meta import read_h5_metadata
    from ecolens.convert.labels import LABELS, POSITIVE_LABEL
    from ecolens.convert.loading import load_keras_model
    from ecolens.convert.metrics import classification_metrics
    from ecolens.core.preprocess import load_image, to_model_input
    from ecolens.train.adapt.model import input_spec
    from ecolens.train.dataset import scan

    loaded = load_keras_model(model)
    stored = read_h5_metadata(model)
    labels = tuple(stored.get("labels") or LABELS)
    spec = input_spec(stored, loaded.input_size)
    samples = scan(folder)
    predicted: list[str] = []
    for start in range(0, len(samples), 32):
        batch = np.stack([to_model_input(load_image(s.path), spec) for s in samples[start : start + 32]])
        predicted += [labels[i] for i in np.asarray(loaded.model.predict(batch, verbose=0)).argmax(axis=1)]
    truth = [s.label for s in samples]
    return float(classification_metrics(truth, predicted, labels, POSITIVE_LABEL)["balanced_accuracy"])


def run(args: argparse.Namespace) -> int:
    from ecolens.core.errors import EcoLensError

    if not 10 <= args.labelled_percent <= 90:  # before TensorFlow's seconds of start-up
        raise EcoLensError("--labelled-percent must be between 10 and 90")
    if not getattr(args, "verbose", False):  # TensorFlow's C++ start-up lines: only with -v
        from ecolens.convert.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    from ecolens.models import reference_h5
    from ecolens.train.adapt.decision import NotBetter
    from ecolens.train.adapt.options import AdaptOptions
    from ecolens.train.adapt.run import adapt

    base = args.base or reference_h5()
    started = time.monotonic()
    folders = build(args.trashnet, args.work, args.base_images, args.labelled_percent, args.camera)
    counts = {name: sum(1 for _ in folder.rglob("*.*")) for name, folder in folders.items()}
    print(f"frames: {counts} ({time.monotonic() - started:.0f} s)", flush=True)
    out = args.work / "adapted.h5"
    out.unlink(missing_ok=True)
    options = AdaptOptions(
        base=base,
        data=folders["labelled"],
        out=out,
        base_data=folders["trashnet-train"],
        base_eval=folders["trashnet-hidden"],
        min_gain=-1.0,  # write it whatever adapt's own gate says: this check measures it
        max_base_drop=1.0,
        refit_all=args.refit_all,
    )
    try:
        report: dict[str, Any] = adapt(options)
    except NotBetter as exc:  # pragma: no cover - the gates above are open
        print(exc)
        return 1
    rows = [
        ("base", base),
        ("adapted", out),
    ]
    print(f"{'':10}{'camera, hidden':>20}{'TrashNet, same photos':>24}")
    figures = {}
    for name, model in rows:
        figures[name] = (score(model, folders["hidden"]), score(model, folders["trashnet-hidden"]))
        print(f"{name:10}{figures[name][0]:>20.3f}{figures[name][1]:>24.3f}", flush=True)
    gain = figures["adapted"][0] - figures["base"][0]
    drop = figures["base"][1] - figures["adapted"][1]
    target = figures["adapted"][0] >= 0.80 and drop <= 0.01
    print(
        f"gain {gain:+.3f} on the camera, {-drop:+.3f} on TrashNet; adapt's own held-out part of the "
        f"labelled frames: {report['field_held_out']['base']['balanced_accuracy']:.3f} -> "
        f"{report['field_held_out']['adapted']['balanced_accuracy']:.3f}; issue 12's target "
        f"(>= 0.80, <= 1 point lost): {'reached' if target else 'NOT reached'} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 0

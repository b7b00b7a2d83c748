"""`ecolens benchmark kernels`: how far a model's scores move between LiteRT's kernel families
on this CPU (not a timing: the spread that decides what "the same answer" can mean on another CPU).

    ecolens benchmark kernels [--model M.tflite] [--images DIR] [--json OUT]

Classifies every image with XNNPACK ("auto", the default), LiteRT's builtin kernels and its
reference kernels, and prints for each pair the largest, 95th-percentile and median difference
of any score (in probability and in output quantization steps) and the labels that flip. These
figures are where tests/support/parity.py's cross-CPU tolerance comes from (docs/arm64.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
from ecolens.core.classifier import Classifier
from ecolens.core.preprocess import find_images
from ecolens.core.runtime import KERNELS


def classify_with(model: Path, images: list[Path], kernels: str) -> dict[str, dict]:
    """One result per image, keyed by path, with one thread (deterministic)."""
    classifier = Classifier(model, threads=1, kernels=kernels)
    return {str(image): classifier.classify_file(image) for image in images}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, help="a .tflite (default: the shipped reference model)")
    parser.add_argument("--images", type=Path, help="a folder of images (default: the shipped samples)")
    parser.add_argument("--json", type=Path, help="also write every run's scores here")


def run(args: argparse.Namespace) -> int:
    from ecolens.models import eval_dir, reference_tflite

    args.model = args.model or reference_tflite()
    args.images = args.images or eval_dir()
    images = find_images(args.images)
    runs = {kernels: classify_with(args.model, images, kernels) for kernels in KERNELS}
    step = float(Classifier(args.model).model.output_quantization[0]) or 1 / 256
    print(f"{len(images)} images, output step {step:.5f}")
    print("pair                   max      p95      median   steps(max/p95)  label flips")
    for first, second in itertools.combinations(KERNELS, 2):
        deltas = np.array(
            [
                max(abs(runs[first][k]["scores"][c] - v) for c, v in runs[second][k]["scores"].items())
                for k in runs[first]
            ]
        )
        flips = [
            f"{Path(k).name} ({runs[first][k]['confidence']:.3f})"
            for k in runs[first]
            if runs[first][k]["label"] != runs[second][k]["label"]
        ]
        print(
            f"{first + ' vs ' + second:22} {deltas.max():.4f}   {np.percentile(deltas, 95):.4f}   "
            f"{np.median(deltas):.4f}   {deltas.max() / step:4.0f}/{np.percentile(deltas, 95) / step:3.0f}"
            f"        {', '.join(flips) or 'none'}"
        )
    if args.json:
        args.json.write_text(json.dumps({k: {s: r["scores"] for s, r in v.items()} for k, v in runs.items()}))
    return 0

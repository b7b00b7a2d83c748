"""`ecolens classify`: classify image files or folders with the edge runtime, one JSON line each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify image files or folders (recursively); prints one JSON result per image",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", type=Path, help="the .tflite (default: shipped reference model)")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="flag results below this confidence as uncertain",
    )
    parser.set_defaults(func=run)


def expand(paths: list[Path]) -> Iterator[Path]:
    """Files as given; folders walked recursively for images, sorted."""
    for path in paths:
        if path.is_dir():
            from ecolens.core.preprocess import find_images

            yield from find_images(path)
        else:
            yield path


def run(args: argparse.Namespace) -> int:
    from ecolens.core.classifier import Classifier
    from ecolens.core.config import ModelSection
    from ecolens.core.errors import ImageError

    model = ModelSection(path=args.model, threads=args.threads, min_confidence=args.min_confidence)
    classifier = Classifier.from_settings(model)
    failures = 0
    seen = 0
    for path in expand(args.paths):
        seen += 1
        try:
            result = classifier.classify_file(path)
        except ImageError as exc:
            failures += 1
            print(json.dumps({"source": str(path), "error": str(exc)}), file=sys.stderr)
            continue
        print(json.dumps(result), flush=True)
    if seen == 0:
        print("ecolens classify: error: no images found", file=sys.stderr)
        return 2
    return 1 if failures else 0

"""`ecolens classify`: classify image files or folders with the edge runtime, one JSON line each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify image files or folders (recursively); prints one JSON result per image",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", type=Path, help="the .tflite (default: shipped reference model)")
    parser.add_argument("--threads", type=bounded(int, 1, 64), help="interpreter threads (1-64)")
    parser.add_argument(
        "--min-confidence",
        type=bounded(float, 0.0, 1.0),
        default=0.0,
        help="flag results below this confidence as uncertain",
    )
    parser.set_defaults(func=run)


def bounded(kind: type, low: float, high: float) -> Callable[[str], Any]:
    """An argparse type with the same bounds as the config's [model] section (checked here so
    that classify, a cold start on every call, does not import the config machinery)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


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
    from ecolens.core.errors import ImageError
    from ecolens.models import reference_tflite

    model = args.model or reference_tflite()
    classifier = Classifier(model, threads=args.threads, min_confidence=args.min_confidence)
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

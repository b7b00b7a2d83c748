"""`ecolens inspect MODEL`: what a user checks before deploying a model (.tflite needs only the
edge runtime; .h5/.keras need the convert extra)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show a model's input shape and range, labels, output, quantization and SHA-256",
        description="For .tflite: the embedded metadata and tensors. For .h5 / .keras: what "
        "`ecolens convert` would find, and where it found it.",
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help=".h5, .keras or .tflite")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--photos",
        type=Path,
        metavar="DIR",
        help="photos of the model's own domain: check a Keras model's input range against them",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        from ecolens.convert.quiet import silence_python_logs

        silence_python_logs()
    from ecolens.commands.convert import unexpected_errors_in_one_line
    from ecolens.convert.inspect import format_inspection, inspect

    with unexpected_errors_in_one_line(args.verbose):
        info = inspect(args.model, verbose=args.verbose, photos=args.photos)
    print(json.dumps(info, indent=2, default=str) if args.json else format_inspection(info))
    return 0

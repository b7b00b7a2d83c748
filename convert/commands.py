"""`ecolens train` and `ecolens convert` (need the convert/train extras at run time only)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a plastic / non-plastic Keras model on image folders and save it as .h5",
        description="Train on DIR/<class>/*.jpg (folders named by --positive are plastic, the "
        "rest non_plastic); deterministic 80/20 train/validation split by file-name hash.",
    )
    train.add_argument("--data", type=Path, required=True, help="folder of class sub-folders")
    train.add_argument("--out", type=Path, required=True, help="output .h5 path")
    train.add_argument("--size", type=int, default=160, help="square input size (default 160)")
    train.add_argument(
        "--backbone", choices=("efficientnet_lite0", "scratch"), default="efficientnet_lite0"
    )
    train.add_argument("--head-epochs", type=int, default=3)
    train.add_argument("--fine-epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=3e-4)
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument(
        "--positive",
        default="plastic",
        help="comma-separated folder names that are plastic (default: plastic)",
    )
    train.add_argument("--name", default="ecolens-plastic-lite0")
    train.add_argument("--model-version", default="1.0.0")
    train.add_argument("--limit", type=int, help="use at most N images (quick runs)")
    train.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from ecolens.convert.train import TrainOptions, train

    train(
        TrainOptions(
            data=args.data,
            out=args.out,
            size=args.size,
            backbone=args.backbone,
            head_epochs=args.head_epochs,
            fine_epochs=args.fine_epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            positive_folders=tuple(f.strip() for f in args.positive.split(",") if f.strip()),
            name=args.name,
            version=args.model_version,
            limit=args.limit,
        )
    )
    return 0

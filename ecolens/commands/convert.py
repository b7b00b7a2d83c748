"""`ecolens train` and `ecolens convert` (need the convert/train extras at run time only)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from ecolens.convert.inputrange import RANGES
from ecolens.convert.quantize import MODES
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import RESIZE_POLICIES


def triple(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise EcoLensError(f"{flag} needs numbers, got {text!r}") from exc
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise EcoLensError(f"{flag} needs one or three comma-separated numbers")
    return values  # type: ignore[return-value]


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train a plastic / non-plastic Keras model on image folders and save it as .h5",
        description="Train on DIR/<class>/*.jpg (folders named by --positive are plastic, the "
        "rest non_plastic); deterministic 80/20 train/validation split by file-name hash.",
    )
    train.add_argument("--data", type=Path, required=True, help="folder of class sub-folders")
    train.add_argument("--out", type=Path, required=True, help="output .h5 path")
    train.add_argument("--size", type=int, default=224, help="square input size (default 224, letterboxed)")
    train.add_argument("--backbone", choices=("efficientnet_lite0", "scratch"), default="efficientnet_lite0")
    train.add_argument(
        "--recipe",
        choices=("tuned", "frozen", "finetune"),
        help="tuned: head on frozen ImageNet features of randomised views, then the last two trunk "
        "stages tuned with distillation (default for efficientnet_lite0); frozen: the head only; "
        "finetune: end-to-end (default for scratch)",
    )
    train.add_argument("--head-epochs", type=int, help="default: 15 (tuned, frozen), 3 (finetune)")
    train.add_argument("--tune-epochs", type=int, default=5, help="tuned: epochs of the tuned blocks + head")
    train.add_argument(
        "--tune-from",
        type=int,
        default=8,
        choices=range(1, 16),
        metavar="BLOCK",
        help="tuned: first of Lite0's blocks 1-15 to tune (default 8: the last three stages)",
    )
    train.add_argument("--tune-learning-rate", type=float, default=3e-4, help="tuned: peak learning rate")
    train.add_argument(
        "--distillation",
        type=float,
        default=1.0,
        help="tuned: weight of the ImageNet-logit distillation loss",
    )
    train.add_argument("--fine-epochs", type=int, default=10)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=3e-4)
    train.add_argument("--seed", type=int, default=1234)
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--dropout", type=float, default=0.3, help="before the classifier")
    train.add_argument(
        "--views", type=int, default=12, help="tuned, frozen: views per training photo (default 12)"
    )
    train.add_argument(
        "--features",
        choices=("all", "both", "pooled", "imagenet"),
        default="all",
        help="frozen: head inputs (all: pooled, ImageNet logits, pooled middle stages; both: the first two)",
    )
    train.add_argument("--l2", type=float, default=1e-2, help="frozen: head weight decay (default 1e-2)")
    train.add_argument(
        "--photo-weight",
        type=float,
        default=8.0,
        help="frozen: weight of each unaltered photo against one randomised view (default 8)",
    )
    train.add_argument("--cache", type=Path, help="tuned, frozen: folder to keep extracted features in")
    train.add_argument(
        "--positive",
        default="plastic",
        help="comma-separated folder names that are plastic (default: plastic)",
    )
    train.add_argument("--name", default="ecolens-plastic-lite0")
    train.add_argument("--model-version", default="1.0.0")
    train.add_argument("--limit", type=int, help="use at most N images (quick runs)")
    train.set_defaults(func=run_train)

    convert = subparsers.add_parser(
        "convert",
        help="convert a Keras .h5/.keras model to a quantized .tflite and prove it still agrees",
        description="Converts MODEL to .tflite, embeds labels/input spec/normalization/version and the "
        "source SHA-256, then runs both models on photos of the model's own domain (--calibration "
        "photos that calibration did not use, or --eval) and refuses to write the output when top-1 "
        "agreement is below --min-agreement. Only EcoLens's own models default to the shipped samples.",
    )
    convert.add_argument("source", type=Path, metavar="MODEL", help=".h5 (Keras 2 or 3) or .keras")
    convert.add_argument(
        "--quantize",
        choices=("auto", *MODES),
        default="auto",
        help="default auto: int8 if it passes the check, else int8-selective (the layers whose int8 "
        "most changes the answers kept in float, at most 1.5x int8's latency), else dynamic, else "
        "float16, else float32",
    )
    convert.add_argument("--out", type=Path, help="default: MODEL.<mode>.tflite beside MODEL")
    convert.add_argument(
        "--calibration",
        type=Path,
        help="photos of what the model classifies (a few hundred); 30%% of them (by file-name hash) "
        "are held out to prove the model on unless --eval is given; class sub-folders named like "
        "the labels make the proof an accuracy check (needed for any model not made by `ecolens "
        "train`; default for EcoLens models: the shipped samples)",
    )
    convert.add_argument(
        "--calibration-count",
        type=int,
        default=200,
        help="at most N images (default 200); int8 that fails the check is retried once on the whole "
        "folder plus flipped copies (up to 1000)",
    )
    convert.add_argument(
        "--eval",
        type=Path,
        help="photos to prove the model on; class sub-folders named like the labels make it an "
        "accuracy check (default: the held-out part of --calibration)",
    )
    convert.add_argument(
        "--no-validate", action="store_true", help="skip the comparison with the source model"
    )
    convert.add_argument(
        "--min-agreement", type=float, default=0.98, help="on photos the source decides (default 0.98)"
    )
    convert.add_argument(
        "--min-agreement-all", type=float, default=0.95, help="on every proof photo, near-ties too (0.95)"
    )
    convert.add_argument(
        "--allow-degenerate",
        action="store_true",
        help="write the model even when it is no better than the majority class or collapses",
    )
    convert.add_argument(
        "--labels", help="comma-separated labels in output order (default: labels.txt beside MODEL)"
    )
    convert.add_argument(
        "--labels-file", type=Path, help="one label per line, or Teachable Machine's '0 name'"
    )
    convert.add_argument(
        "--positive-label", help="the label whose F1 is reported (default: the one named plastic, any case)"
    )
    convert.add_argument(
        "--input-range",
        choices=tuple(RANGES),
        help="pixels the model was trained on: 0..255, 0..1 (x/255), -1..1 (x/127.5-1; write "
        "--input-range=-1..1), caffe "
        "(BGR minus ImageNet means), torch (ImageNet mean/std) (default: found from the model)",
    )
    convert.add_argument("--mean", help="per-channel means on 0..255 pixels, e.g. 127.5,127.5,127.5")
    convert.add_argument("--std", help="per-channel stds on 0..255 pixels, e.g. 127.5,127.5,127.5")
    convert.add_argument("--color-order", choices=("RGB", "BGR"))
    convert.add_argument("--resize", choices=RESIZE_POLICIES)
    convert.add_argument("--name", help="model name recorded in the metadata")
    convert.add_argument("--model-version", help="model version recorded in the metadata")
    convert.add_argument("--io-type", choices=("int8", "uint8"), default="int8", help="int8 tensor type")
    convert.set_defaults(func=run_convert)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="accuracy table, confusion matrix and reliability diagram of a .tflite on labelled images",
        description="Classifies DIR/<label>/*.jpg with the edge runtime (as a bin would) and writes "
        "evaluation.json, confusion_matrix.png and reliability.png (PNGs need the 'plots' extra).",
    )
    evaluate.add_argument("--model", type=Path, help="the .tflite (default: shipped reference model)")
    evaluate.add_argument(
        "--data",
        type=Path,
        help="labelled images in sub-folders named after labels or TrashNet materials "
        "(default: the shipped evaluation sample)",
    )
    evaluate.add_argument(
        "--out", type=Path, default=Path("evaluation"), help="output folder (default: evaluation)"
    )
    evaluate.add_argument("--threads", type=int, help="interpreter threads")
    evaluate.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from ecolens.models import eval_dir, reference_tflite
    from ecolens.train.evaluate import evaluate, format_table, write

    report = evaluate(args.model or reference_tflite(), args.data or eval_dir(), args.threads)
    print(format_table(report))
    for path in write(report, args.out):
        print(f"wrote {path}")
    return 1 if report["skipped_images"] else 0


def run_train(args: argparse.Namespace) -> int:
    if not args.verbose:
        from ecolens.convert.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    from ecolens.train.options import TrainOptions
    from ecolens.train.train import train

    train(
        TrainOptions(
            data=args.data,
            out=args.out,
            size=args.size,
            backbone=args.backbone,
            recipe=args.recipe,
            views=args.views,
            features=args.features,
            l2=args.l2,
            photo_weight=args.photo_weight,
            cache=args.cache,
            head_epochs=args.head_epochs,
            fine_epochs=args.fine_epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            seed=args.seed,
            label_smoothing=args.label_smoothing,
            dropout=args.dropout,
            positive_folders=tuple(f.strip() for f in args.positive.split(",") if f.strip()),
            name=args.name,
            version=args.model_version,
            limit=args.limit,
            tune_epochs=args.tune_epochs,
            tune_from=args.tune_from,
            tune_learning_rate=args.tune_learning_rate,
            distillation=args.distillation,
        )
    )
    return 0


def run_convert(args: argparse.Namespace) -> int:
    if args.input_range and (args.mean or args.std):
        raise EcoLensError("give either --input-range or --mean/--std, not both")
    if not args.verbose:
        from ecolens.convert.quiet import silence_python_logs

        silence_python_logs()
    from ecolens.convert.converter import convert
    from ecolens.convert.options import ConvertOptions
    from ecolens.convert.summary import format_report

    labels = tuple(x.strip() for x in args.labels.split(",") if x.strip()) if args.labels else None
    options = ConvertOptions(
        source=args.source,
        mode=args.quantize,
        out=args.out,
        calibration=args.calibration,
        calibration_count=args.calibration_count,
        eval=args.eval,
        validate=not args.no_validate,
        min_agreement=args.min_agreement,
        min_agreement_all=args.min_agreement_all,
        labels=labels,
        labels_file=args.labels_file,
        input_range=args.input_range,
        allow_degenerate=args.allow_degenerate,
        verbose=args.verbose,
        positive_label=args.positive_label,
        mean=triple(args.mean, "--mean"),
        std=triple(args.std, "--std"),
        color_order=args.color_order,
        resize=args.resize,
        name=args.name,
        version=args.model_version,
        io_type=args.io_type,
    )
    with unexpected_errors_in_one_line(args.verbose):
        report = convert(options)
    print(format_report(report))
    return 0


@contextlib.contextmanager
def unexpected_errors_in_one_line(verbose: bool) -> Iterator[None]:
    """Keras and TensorFlow raise many kinds of errors on unusual models: one line unless -v."""
    try:
        yield
    except (EcoLensError, ModuleNotFoundError, KeyboardInterrupt):
        raise
    except Exception as exc:
        if verbose:
            raise
        text = (str(exc).strip().splitlines() or [""])[0][:300]
        raise EcoLensError(
            f"conversion failed: {type(exc).__name__}: {text} (ecolens -v convert ... shows more)"
        ) from exc

"""`ecolens adapt`: fit a model's final layer, threshold and temperature to one site's labelled
frames (needs the convert extra at run time only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ecolens.core.errors import EcoLensError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt",
        help="adapt a trained .h5 to a site's camera from a few hundred labelled frames",
        description="Fits only what a few hundred frames support (a site final layer, decision "
        "threshold and temperature, behind a gate that opens on this camera's frames) on "
        "DIR/<class>/*.jpg mixed with base training images, holds out part of DIR, and writes "
        "the adapted .h5 only when it beats the base model there without forgetting the base "
        "domain; then writes the deployable .tflite itself: int8 calibrated on base images and the "
        "site's frames, proven on the held-out frames to keep at least 90% of the gain (else the "
        "next mode that does). Deploy that .tflite (`ecolens rollout site.tflite ...`); a plain "
        "`ecolens convert` of the .h5 would calibrate without the site's frames and is refused.",
    )
    parser.add_argument(
        "--base", type=Path, required=True, help="the trained model (.h5 with EcoLens metadata)"
    )
    parser.add_argument("--data", type=Path, required=True, help="labelled field frames in class sub-folders")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="site.tflite: the deployable model (the adapted .h5 goes beside it as site.h5); "
        "or site.h5 (the .tflite goes beside it as site.tflite)",
    )
    parser.add_argument(
        "--no-convert", action="store_true", help="write only the adapted .h5 (no deployable .tflite)"
    )
    parser.add_argument(
        "--base-data",
        type=Path,
        help="base-domain training images mixed in so the model does not forget "
        "(default: the shipped sample, models/samples/calibration)",
    )
    parser.add_argument(
        "--base-eval",
        type=Path,
        help="base-domain held-out images for the forgetting check (default: models/samples/eval)",
    )
    parser.add_argument(
        "--positive",
        default="plastic",
        help="comma-separated folder names that are plastic (default: plastic)",
    )
    parser.add_argument("--holdout", type=int, default=33, help="percent of DIR held out (default 33)")
    parser.add_argument(
        "--base-share",
        type=float,
        help="weight of base images vs field frames (default: one fit each at 0.3, 1 and 3, averaged)",
    )
    parser.add_argument(
        "--min-gain",
        type=float,
        default=0.02,
        help=(
            "balanced accuracy to gain on held-out frames (default 0.02); "
            "0 or below also writes a gain that may be chance"
        ),
    )
    parser.add_argument(
        "--max-base-drop",
        type=float,
        default=0.03,
        help="balanced accuracy it may lose on held-out base images (default 0.03)",
    )
    parser.add_argument(
        "--refit-all",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="once it beats the base model on the held-out frames, fit the written model on every "
        "labelled frame (default; its report stays the one measured before)",
    )
    parser.add_argument("--model-version", help="version of the adapted model (default: base version + 1)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run_adapt)


def run_adapt(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):  # TensorFlow's C++ start-up lines: only with -v
        from ecolens.convert.quiet import import_tensorflow_quietly

        import_tensorflow_quietly()
    from ecolens.train.adapt.decision import NotBetter
    from ecolens.train.adapt.options import AdaptOptions
    from ecolens.train.adapt.output import format_report
    from ecolens.train.adapt.run import adapt

    h5 = args.out.with_suffix(".h5") if args.out.suffix == ".tflite" else args.out
    options = AdaptOptions(
        base=args.base,
        data=args.data,
        out=h5,
        tflite=None if args.no_convert else h5.with_suffix(".tflite"),
        base_data=args.base_data,
        base_eval=args.base_eval,
        positive_folders=tuple(f.strip() for f in args.positive.split(",") if f.strip()),
        holdout_percent=args.holdout,
        base_share=args.base_share,
        min_gain=args.min_gain,
        max_base_drop=args.max_base_drop,
        version=args.model_version,
        refit_all=args.refit_all,
    )
    try:
        report = adapt(options)
    except NotBetter as exc:
        print(json.dumps(exc.report, indent=2) if args.json else format_report(exc.report))
        sys.stdout.flush()
        raise EcoLensError(str(exc)) from exc
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0

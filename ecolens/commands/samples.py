"""`ecolens samples export`: the labelled samples as class folders for `ecolens adapt`
(samples arrive with `ecolens aggregate --samples-dir DIR` and are labelled on its /label page);
`ecolens samples prune`: delete samples that are done with, to make room under the cap."""

from __future__ import annotations

import argparse
from pathlib import Path

from ecolens.core.errors import EcoLensError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "samples",
        help="export labelled samples as class folders (for ecolens adapt), or prune them",
        description="export: copies every sample labelled plastic or non_plastic on the labelling page "
        "into OUT/plastic and OUT/non_plastic (skipped and unlabelled ones stay out). prune: deletes "
        "samples (image and row) in --state, e.g. after an export, to make room under the "
        "aggregator's --samples-max-mb.",
    )
    parser.add_argument("action", choices=("export", "prune"))
    parser.add_argument("--dir", type=Path, required=True, help="the aggregator's --samples-dir")
    parser.add_argument("--out", type=Path, help="export: folder to write class folders into")
    parser.add_argument("--device", help="only this bin's samples")
    parser.add_argument(
        "--state",
        choices=("labelled", "skipped", "all"),
        help="prune: delete these samples, image and row (export labelled ones first)",
    )
    parser.add_argument(
        "--older-than-days", type=float, default=0.0, help="prune: only samples received before this"
    )
    parser.set_defaults(func=run_samples)


def run_samples(args: argparse.Namespace) -> int:
    from ecolens.fleet.samples.store import SampleStore

    if not (args.dir / "samples.sqlite3").is_file():
        raise EcoLensError(f"no samples in {args.dir} (start `ecolens aggregate --samples-dir {args.dir}`)")
    if args.action == "export" and args.out is None:
        raise EcoLensError("samples export needs --out DIR")
    if args.action == "prune" and args.state is None:
        raise EcoLensError("samples prune needs --state labelled, skipped or all")
    store = SampleStore(args.dir)
    try:
        if args.action == "prune":
            count, freed = store.prune(args.state, args.older_than_days, args.device)
            print(f"deleted {count} {args.state} samples from {args.dir}, {freed / 1024**2:.1f} MB freed")
            return 0
        counts = store.export(args.out, args.device)
    finally:
        store.close()
    missing = (
        f" ({counts['missing_image']} labelled without an image file skipped)"
        if counts["missing_image"]
        else ""
    )
    print(
        f"exported {counts['plastic']} plastic and {counts['non_plastic']} non_plastic samples to {args.out}"
        + missing
    )
    return 0

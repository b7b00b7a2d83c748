"""`ecolens samples export`: the labelled samples as class folders for `ecolens adapt`
(samples arrive with `ecolens aggregate --samples-dir DIR` and are labelled on its /label page)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ecolens.core.errors import EcoLensError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "samples",
        help="export labelled samples from the bins as class folders (for ecolens adapt)",
        description="Copies every sample labelled plastic or non_plastic on the labelling page into "
        "OUT/plastic and OUT/non_plastic (skipped and unlabelled ones stay out).",
    )
    parser.add_argument("action", choices=("export",))
    parser.add_argument("--dir", type=Path, required=True, help="the aggregator's --samples-dir")
    parser.add_argument("--out", type=Path, required=True, help="folder to write class folders into")
    parser.add_argument("--device", help="only this bin's samples")
    parser.set_defaults(func=run_samples)


def run_samples(args: argparse.Namespace) -> int:
    from ecolens.fleet.samples import SampleStore

    if not (args.dir / "samples.sqlite3").is_file():
        raise EcoLensError(f"no samples in {args.dir} (start `ecolens aggregate --samples-dir {args.dir}`)")
    store = SampleStore(args.dir)
    try:
        counts = store.export(args.out, args.device)
    finally:
        store.close()
    print(
        f"exported {counts['plastic']} plastic and {counts['non_plastic']} non_plastic samples to {args.out}"
    )
    return 0

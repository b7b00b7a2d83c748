"""`ecolens benchmark NAME`: each benchmark prints its figures against a baseline measured in
the same run (ratios, medians of several runs). Implementations live beside what they measure."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

# name -> (module with add_arguments(parser) and run(args) -> int, or -> Figures when the module
# says RETURNS_FIGURES = True, which gives it --plot FILE.png; help)
BENCHMARKS = {
    "models": ("ecolens.bench.models", "Keras .h5 vs .tflite int8/float16/float32 latency"),
    "daemon": ("ecolens.bench.daemon", "daemon fps, CPU, frame-to-publish latency, RSS"),
    "api": (
        "ecolens.bench.api",
        "POST /predict throughput and latency vs a plain LiteRT app and a Keras baseline",
    ),
    "coldstart": ("ecolens.bench.coldstart", "`ecolens classify` start-up vs a bare LiteRT script"),
    "fleet": ("ecolens.bench.fleet", "aggregator ingest rate and report query time"),
    "binpage": ("ecolens.bench.binpage", "the daemon's CPU with the bin page off, unwatched and watched"),
    "adapt": ("ecolens.bench.adapt_check", "`adapt` on a synthetic other camera (issue 12's target)"),
    "kernels": ("ecolens.bench.kernels", "score spread between LiteRT's kernel families on this CPU"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("benchmark", help="measure performance against a baseline")
    names = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, (module_name, help_text) in BENCHMARKS.items():
        sub = names.add_parser(name, help=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # not part of this build
            raise
        module.add_arguments(sub)
        if getattr(module, "RETURNS_FIGURES", False):
            sub.add_argument(
                "--plot",
                type=Path,
                metavar="FILE.png",
                help="also draw the figures as ratios to the baseline (needs the 'plots' extra)",
            )
        sub.set_defaults(func=with_machine_lines(module.run))


def with_machine_lines(run: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """Every benchmark starts and ends with the machine it ran on and its load average, and
    draws its figures when asked (checked before it runs, so a long run is not wasted)."""

    def wrapped(args: argparse.Namespace) -> int:
        from ecolens.bench.figures import Figures
        from ecolens.bench.machine import header

        plot: Path | None = getattr(args, "plot", None)
        draw = plotter(plot) if plot else None
        print(header(), flush=True)
        try:
            result = run(args)
            if isinstance(result, Figures) and draw and plot:
                note = f"{header()} (at the end of the run)"
                draw(result.title, result.baseline, result.panels, plot, values=result.values, note=note)
                print(f"plot: {plot}", flush=True)
        finally:
            print("at the end: " + header(), flush=True)
        return result.exit_code if isinstance(result, Figures) else result

    return wrapped


def plotter(path: Path) -> Callable[..., Path]:
    from ecolens.core.errors import EcoLensError

    if path.suffix.lower() != ".png":
        raise EcoLensError(f"--plot {path}: give a .png file name")
    if not path.parent.resolve().is_dir():
        raise EcoLensError(f"--plot {path}: folder {path.parent} does not exist")
    try:
        from ecolens.train.plots import ratio_bars_png
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "matplotlib":
            raise
        raise EcoLensError("--plot needs matplotlib: pip install 'ecolens[plots]'") from None
    return ratio_bars_png

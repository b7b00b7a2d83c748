"""`ecolens benchmark NAME`: each benchmark prints its figures against a baseline measured in
the same run (ratios, medians of several runs). Implementations live beside what they measure."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

# name -> (module with add_arguments(parser) and run(args) -> int, help)
BENCHMARKS = {
    "models": ("ecolens.bench.models", "Keras .h5 vs .tflite int8/float16/float32 latency"),
    "daemon": ("ecolens.bench.daemon", "daemon fps, CPU, frame-to-publish latency, RSS"),
    "api": (
        "ecolens.bench.api",
        "POST /predict throughput and latency vs a plain LiteRT app and a Keras baseline",
    ),
    "coldstart": ("ecolens.bench.coldstart", "`ecolens classify` start-up vs a bare LiteRT script"),
    "fleet": ("ecolens.bench.fleet", "aggregator ingest rate and report query time"),
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
        sub.set_defaults(func=with_machine_lines(module.run))


def with_machine_lines(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Every benchmark starts and ends with the machine it ran on and its load average."""

    def wrapped(args: argparse.Namespace) -> int:
        from ecolens.bench.machine import header

        print(header(), flush=True)
        try:
            return run(args)
        finally:
            print("at the end: " + header(), flush=True)

    return wrapped

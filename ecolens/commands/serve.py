"""`ecolens serve`: the local HTTP API (POST /predict) under uvicorn, or Flask under gunicorn."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve POST /predict (the result contract over HTTP) and TF Serving's REST API",
        description="Serve the local HTTP API. Settings: --config FILE, then ECOLENS_* "
        "environment variables, then these flags. See docs/api.md.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="TOML config file")
    parser.add_argument(
        "--validate-config",
        action="store_true",
        help="check the configuration, the files it names and the model, print the effective settings, exit",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8080)")
    parser.add_argument(
        "--server",
        choices=["uvicorn", "flask"],
        help="uvicorn: the Starlette app (default); flask: the Flask Blueprint under gunicorn "
        "(server.kind; needs pip install 'ecolens[flask]')",
    )
    parser.add_argument("--model", type=Path, help="the .tflite (default: reference model)")
    parser.add_argument("--workers", type=int, help="worker processes (default 2)")
    parser.add_argument(
        "--request-threads",
        type=int,
        metavar="N",
        help="requests each worker decodes and classifies at once, its pool (server.threads, default 1)",
    )
    parser.add_argument(
        "--model-threads",
        type=int,
        metavar="N",
        help="LiteRT interpreter threads per worker ([model] threads, default cores / workers)",
    )
    parser.add_argument("--threads", type=int, metavar="N", help="deprecated: same as --request-threads")
    parser.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS: certificate")
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="serve HTTPS: private key")
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a non-loopback address without API keys",
    )
    parser.add_argument(
        "--wait-for-model",
        action="store_true",
        default=None,
        help="start without the model file and answer 503 until it appears",
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--new-key", action="store_true", help="print a new random API key and its hash, then exit"
    )
    keys.add_argument(
        "--hash-key",
        action="store_true",
        help="read an API key from stdin and print the hash for [auth] key_hashes, then exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ecolens.core.http.keys import hash_key, new_key

    if args.new_key:
        key = new_key()
        print(f"key:  {key}\nhash: {hash_key(key)}")
        return 0
    if args.hash_key:
        key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
        key = key.strip()
        if not key:
            from ecolens.core.errors import ConfigError

            raise ConfigError("no key given on stdin")
        print(hash_key(key))
        return 0

    from ecolens.edge.api.server import serve
    from ecolens.edge.api.settings import load_api_config

    request_threads = request_threads_flag(args)

    overrides = {
        "server.host": args.host,
        "server.port": args.port,
        "server.kind": args.server,
        "server.workers": args.workers,
        "server.threads": request_threads,
        "server.tls_cert": args.tls_cert and str(args.tls_cert),
        "server.tls_key": args.tls_key and str(args.tls_key),
        "server.insecure": args.insecure,
        "server.wait_for_model": args.wait_for_model,
        "model.path": args.model and str(args.model),
        "model.threads": args.model_threads,
    }
    config = load_api_config(args.config, overrides)
    if args.validate_config:
        from ecolens.core.config_check import validate_and_print

        print(validate_and_print(config, config.model.resolved_path()), file=sys.stderr)
        return 0
    return serve(config)


def request_threads_flag(args: argparse.Namespace) -> int | None:
    """`--threads` meant the request pool on serve but interpreter threads on run: kept, warned."""
    if args.threads is None:
        return args.request_threads
    print(
        "ecolens serve: --threads is deprecated, use --request-threads (or --model-threads for the "
        "interpreter)",
        file=sys.stderr,
    )
    return args.request_threads if args.request_threads is not None else args.threads

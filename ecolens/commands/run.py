"""`ecolens run`: the bin daemon (camera -> item results -> MQTT), usually under systemd."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the edge daemon: classify items seen by the camera and publish over MQTT",
        description="Settings come from --config (TOML), then ECOLENS_SECTION__KEY environment "
        "variables, then these flags. See docs/daemon.md.",
    )
    parser.add_argument("--config", type=Path, help="TOML file, e.g. /etc/ecolens/edge.toml")
    parser.add_argument(
        "--validate-config",
        action="store_true",
        help="check the configuration and the model, print the effective settings, exit",
    )
    add_override_flags(parser)
    parser.set_defaults(func=run)


def add_override_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        help="camera index or /dev/videoN, rtsp:// URL, video file, image folder or glob, or picamera2",
    )
    parser.add_argument("--model", type=Path, help="the .tflite (default: the reference model)")
    parser.add_argument("--broker", help="mqtt[s]://[user:pass@]host:port")
    parser.add_argument("--device-id", help="this bin's id in topics (default: host name)")
    parser.add_argument("--threads", type=int, help="interpreter threads")
    parser.add_argument("--loop", action="store_true", default=None, help="loop a file source")
    parser.add_argument("--speed", type=float, help="video file playback speed (1 = real time, 0 = max)")
    parser.add_argument("--store", type=Path, help="queue file (SQLite)")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    from ecolens.core.mqtt import broker_overrides

    overrides: dict[str, Any] = {
        "source.uri": args.source,
        "model.path": str(args.model) if args.model else None,
        "publish.device_id": args.device_id,
        "model.threads": args.threads,
        "source.loop": args.loop,
        "source.speed": args.speed,
        "store.path": str(args.store) if args.store else None,
    }
    overrides.update(broker_overrides(args.broker))
    return overrides


def run(args: argparse.Namespace) -> int:
    from ecolens.core.logs import configure_logging
    from ecolens.edge.daemon.app import Daemon
    from ecolens.edge.daemon.config import load_daemon_config

    overrides = overrides_from(args)
    config = load_daemon_config(args.config, overrides)
    if args.validate_config:
        return validate(config)
    configure_logging(config.service.log_format, "debug" if args.verbose else config.service.log_level)
    return Daemon(config, args.config, overrides).run()


def validate(config) -> int:
    """Settings are valid (load_config raised otherwise); the model must load too, and the
    files the settings name must exist (TLS files, a video file or image folder source)."""
    import threading

    from ecolens.core.config_check import validate_and_print
    from ecolens.edge.daemon.sources import make_source

    config.mqtt.check_files()
    make_source(config.source, threading.Event())  # a missing video file is refused here
    print(validate_and_print(config, config.model.resolved_path()), file=sys.stderr)
    return 0

"""`ecolens demo`: the daemon on the shipped sample clip as its camera, publishing to a local
broker this command starts, with every result printed as it arrives (one readable line each,
or the JSON with --json)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ecolens.core.mqtt import BrokerSection


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the daemon on the sample clip against a local broker and print the results",
    )
    parser.add_argument("--loop", action="store_true", help="play the clip forever (Ctrl-C stops)")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="clip playback speed (1 = real time, 0 = max)"
    )
    parser.add_argument("--source", help="another clip, camera or image folder instead")
    parser.add_argument("--model", type=Path, help="the .tflite (default: the reference model)")
    parser.add_argument(
        "--broker",
        help="use this broker (mqtt://host:port) instead of starting a local one",
    )
    parser.add_argument(
        "--embedded-broker",
        action="store_true",
        help="use the embedded amqtt broker even where Mosquitto is installed",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the JSON results, one per line, instead of readable lines"
    )
    fleet = parser.add_argument_group("the fleet demo (--fleet)")
    fleet.add_argument(
        "--fleet",
        action="store_true",
        help="instead: the fleet dashboard on a 24-hour city with every state at once, plus live bins",
    )
    fleet.add_argument("--bins", type=int, default=42, help="bins in the city (at least 12; 42)")
    fleet.add_argument("--port", type=int, default=8090, help="dashboard port on 127.0.0.1 (0 = any free)")
    fleet.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = at Ctrl-C)")
    parser.set_defaults(func=run)


def sample_clip() -> Path:
    from ecolens.models import samples_dir

    return samples_dir() / "clip" / "items.mp4"


def describe(result: dict) -> str:
    flag = "  (uncertain)" if result.get("uncertain") else ""
    seen = result["timestamp"][11:23]
    return (
        f"{seen}  {result['label']:<12} {result['confidence'] * 100:5.1f}%  "
        f"{result.get('frames', 1)} frames  {result['inference_ms']:.1f} ms  "
        f"event {result['event_id'][:8]}{flag}"
    )


class ResultPrinter:
    """Subscribes to the results topic and prints each result as it arrives."""

    def __init__(self, broker: BrokerSection, topic: str, json_only: bool) -> None:
        from ecolens.core.mqtt.client import MqttClient

        self.json_only = json_only
        self.count = 0
        self.reader_gone = threading.Event()  # stdout's reader left (`ecolens demo --json | head`)
        self.subscribed = threading.Event()
        # The daemon's own connection settings (credentials, TLS) for a broker given by URL.
        self.client = MqttClient(broker, f"ecolens-demo-sub-{secrets.token_hex(4)}")
        self.client.subscribe(topic, qos=1)
        self.client.route(topic, self._on_message)
        self.client.on_subscribed = lambda granted: self.subscribed.set()
        self.client.connect()
        self.client.start()

    def _on_message(self, message: Any) -> None:
        result = json.loads(message.payload)
        self.count += 1
        if self.reader_gone.is_set():
            return
        try:
            if self.json_only:
                print(json.dumps(result), flush=True)
            else:
                print(f"#{self.count:<3} {describe(result)}", flush=True)
        except BrokenPipeError:
            # On the MQTT thread, where the CLI's own handler cannot see it: stop quietly, as
            # Unix tools do, and let run() end the daemon (stdout to /dev/null for the last flush).
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            self.reader_gone.set()

    def stop(self) -> None:
        self.client.stop()


def run(args: argparse.Namespace) -> int:
    from ecolens.bench.localbroker import LocalBroker
    from ecolens.core.logs import configure_logging
    from ecolens.core.mqtt import parse_broker_url
    from ecolens.core.wire import RESULT
    from ecolens.edge.daemon.app import Daemon
    from ecolens.edge.daemon.config import load_daemon_config

    configure_logging("text", "debug" if args.verbose else "warning")
    if args.fleet:
        return run_fleet(args)
    broker = None
    if args.broker:
        url = args.broker
    else:
        broker = LocalBroker(prefer="amqtt" if args.embedded_broker else "mosquitto").start()
        url = broker.url
        if not args.json:
            print(f"local MQTT broker ({broker.kind}) on {url}", flush=True)
    try:
        with tempfile.TemporaryDirectory(prefix="ecolens-demo-") as state:
            overrides = {
                "source.uri": args.source or str(sample_clip()),
                "source.loop": args.loop,
                "source.speed": args.speed,
                "model.path": str(args.model) if args.model else None,
                "publish.device_id": "demo-bin",
                "publish.stats_interval_s": 0,
                "store.path": str(Path(state) / "queue.sqlite3"),
                "store.synchronous": "normal",
                "service.watch_interval_s": 0,
            }
            overrides.update({f"mqtt.{k}": v for k, v in parse_broker_url(url).items()})
            config = load_daemon_config(None, overrides, environ={})
            topic = config.publish.topic(RESULT)
            printer = ResultPrinter(config.mqtt, topic, args.json)
            printer.subscribed.wait(10)
            if not args.json:
                print(f"daemon reading {config.source.uri}; results on {topic}:", flush=True)
            daemon = Daemon(config)
            daemon.keep_results = True
            stop_when_reader_leaves(printer, daemon)
            # On Ctrl-C, run() still stops the daemon cleanly (finish item, flush, offline).
            with contextlib.suppress(KeyboardInterrupt):
                daemon.run(install_signals=False)
            # Let the last acknowledged results reach the printer (up to 10 s on a loaded machine).
            deadline = threading.Event()
            for _ in range(200):
                if printer.count >= len(daemon.results):
                    break
                deadline.wait(0.05)
            printer.stop()
            if not args.json:
                print(f"done: {printer.count} results", flush=True)
    finally:
        if broker is not None:
            broker.stop()
    if printer.reader_gone.is_set():
        return 141  # 128 + SIGPIPE, as the CLI's own BrokenPipeError handler returns
    return 0 if printer.count == len(daemon.results) else 1


def stop_when_reader_leaves(printer: ResultPrinter, daemon: Any) -> None:
    """Ends the daemon's run (cleanly: finish the item, flush, offline) once nobody reads."""

    def watch() -> None:
        while not daemon.stop_event.is_set():
            if printer.reader_gone.wait(0.2):
                daemon.stop_event.set()
                return

    threading.Thread(target=watch, name="demo-reader", daemon=True).start()


def run_fleet(args: argparse.Namespace) -> int:
    """`ecolens demo --fleet`: a local broker (unless --broker), then ecolens.fleet.demo."""
    from ecolens.bench.localbroker import LocalBroker
    from ecolens.fleet.demo import FleetDemoOptions, run_fleet_demo

    options = FleetDemoOptions(bins=args.bins, port=args.port, seconds=args.seconds, as_json=args.json)
    if args.broker:
        return run_fleet_demo(options, args.broker)
    broker = LocalBroker(prefer="amqtt" if args.embedded_broker else "mosquitto").start()
    try:
        return run_fleet_demo(options, broker.url)
    finally:
        broker.stop()

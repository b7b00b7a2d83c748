"""`ecolens demo --fleet`: the fleet dashboard on a city that shows every state at once.

The last 24 hours of the every-state scenario (fleet/scenario.py: offline, stale, camera down
with its reason, missing results, a dirty lens, slow inference, a growing queue, ...) are stored
through the aggregator's own parsing at the times the bins sent them; then a real aggregator
ingests from a local broker while a few live bins keep publishing, so the health line says
"Ingest live" and stopping the broker turns the page degraded, as it would in a city.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import parse_broker_url
from ecolens.fleet.config import FleetConfig
from ecolens.fleet.scenario import build_scenario, store_timeline
from ecolens.fleet.simulator import STATS_INTERVAL_S, FleetSimulator, reference_model_info
from ecolens.fleet.storage import open_database

LIVE_BINS = 3
LIVE_EVERY_S = 2.0  # one live result this often, from one of the live bins


@dataclass
class FleetDemoOptions:
    bins: int = 42
    port: int = 8090
    seconds: float = 0.0  # 0: until Ctrl-C or SIGTERM
    as_json: bool = False
    seed: int = 26


def store_scenario(url: str, bins: int, seed: int) -> dict[str, str]:
    """The scenario's 24 hours in the database at ``url``; role -> device id."""
    if bins < 12:
        raise ConfigError("--bins must be at least 12 for the fleet demo (one bin per state)")
    labels, model = reference_model_info()
    scenario = build_scenario("ecolens", bins, labels, model, seed=seed)
    database = open_database(url)
    try:
        store_timeline(database, "ecolens", scenario.messages)
    finally:
        database.close()
    return scenario.roles


def publish_live(simulator: FleetSimulator, stop: threading.Event) -> None:
    """A few healthy bins sending now: a result every LIVE_EVERY_S, stats every minute."""
    for bin_ in simulator.bins:
        simulator.publish_status(bin_.device_id, "online")
    stats_due = 0.0
    while not stop.wait(LIVE_EVERY_S):
        if time.monotonic() >= stats_due:
            simulator.publish_stats()
            stats_due = time.monotonic() + STATS_INTERVAL_S
        simulator.publish_result(random.choice(simulator.bins), datetime.now(timezone.utc))


def run_fleet_demo(options: FleetDemoOptions, broker_url: str) -> int:
    """Scenario database, aggregator with dashboard, live bins on ``broker_url``; then wait
    for Ctrl-C, SIGTERM or ``options.seconds``."""
    from ecolens.fleet.service import FleetService

    stop = threading.Event()
    service = simulator = None
    try:
        with tempfile.TemporaryDirectory(prefix="ecolens-fleet-demo-") as folder:
            storage = f"sqlite:///{Path(folder) / 'fleet.db'}"
            roles = store_scenario(storage, options.bins, options.seed)
            config = FleetConfig.model_validate(
                {
                    "mqtt": parse_broker_url(broker_url),
                    "storage": {"url": storage},
                    "http": {"host": "127.0.0.1", "port": options.port},
                }
            )
            service = FleetService(config).start()
            assert service.server is not None
            dashboard = f"{service.server.scheme}://127.0.0.1:{service.server.port}/"
            simulator = FleetSimulator(config.mqtt, bins=LIVE_BINS, seed=options.seed, id_prefix="live")
            simulator.connect()
            live = threading.Thread(target=publish_live, args=(simulator, stop), name="live", daemon=True)
            live.start()
            announce(dashboard, broker_url, roles, options)
            if options.seconds:
                threading.Timer(options.seconds, service.request_stop).start()
            service.run_until_signal()
            stop.set()
            live.join(LIVE_EVERY_S + 5)
    finally:
        stop.set()
        if simulator is not None:
            simulator.close(offline=False)
        if service is not None:
            service.stop()
    return 0


def announce(dashboard: str, broker_url: str, roles: dict[str, str], options: FleetDemoOptions) -> None:
    """Where to look, and which bin plays which state (one JSON line with --json)."""
    if options.as_json:
        print(json.dumps({"dashboard": dashboard, "broker": broker_url, "roles": roles}), flush=True)
        return
    print(f"fleet dashboard: {dashboard}  (label page: {dashboard}label)", flush=True)
    print(f"broker {broker_url}; {options.bins} scenario bins and {LIVE_BINS} live ones:", flush=True)
    for role, device in roles.items():
        print(f"  {device:<10} {role.replace('_', ' ')}", flush=True)
    print("Ctrl-C stops." if not options.seconds else f"stopping in {options.seconds:.0f} s.", flush=True)

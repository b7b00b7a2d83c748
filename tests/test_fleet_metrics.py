"""The aggregator's /metrics over real HTTP, fed through a real Mosquitto: checked by promtool
and read back with prometheus_client's parser."""

from __future__ import annotations

import json

import paho.mqtt.publish as publish
import requests
from ecolens.fleet.config import HttpSection, ReportSection
from ecolens.fleet.messages import parse_message
from ecolens.fleet.metrics import reason_kind
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import Rejected
from ecolens.fleet.web import BackgroundServer, create_app

from tests.support.promtool import promtool_check, samples
from tests.test_fleet_ingest import aggregator, simulate


def test_aggregator_metrics_count_ingest_rejections_and_bins(mosquitto, tmp_path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    running = aggregator(mosquitto, url, "agg-metrics").start()
    app = create_app(lambda: open_database(url, migrate=False), ReportSection(), running.stats.snapshot)
    server = BackgroundServer(app, HttpSection(port=0)).start()
    try:
        simulate(mosquitto, count=200, bins=4)
        bad = [
            ("ecolens/bin-001/result", b"{not json"),
            ("ecolens/bin-001/result", json.dumps({"label": "plastic"}).encode()),
            ("ecolens/bin-002/result", json.dumps({"label": "x"}).encode()),
            ("ecolens/bin-003/status", b"sleeping"),
        ]
        for topic, payload in bad:
            publish.single(topic, payload, qos=1, hostname=mosquitto.host, port=mosquitto.port)
        assert running.wait_idle(quiet_s=0.5, timeout=60)
        text = requests.get(f"{server.url}/metrics", timeout=10).text
    finally:
        server.stop()
        running.stop()
    promtool_check(text)
    values = samples(text)
    assert values[("ecolens_fleet_ingest_stored_total", ())] == 200
    assert values[("ecolens_fleet_ingest_received_total", ())] == 200 + 4 + 4  # results, bad, statuses
    rejected = {
        dict(labels)["reason"]: v
        for (name, labels), v in values.items()
        if name == "ecolens_fleet_ingest_rejected_by_reason_total"
    }
    assert rejected == {"not_json": 1, "contract": 2, "bad_status": 1}, rejected
    assert values[("ecolens_fleet_ingest_lag", ())] == 0
    assert 0 <= values[("ecolens_fleet_writer_lag_seconds", ())] < 30
    assert values[("ecolens_fleet_broker_connected", ())] == 1
    last_seen = {dict(labels)["device_id"] for (name, labels), _ in values.items() if "last_seen" in name}
    assert last_seen == {"bin-001", "bin-002", "bin-003", "bin-004"}
    assert values[("ecolens_fleet_bins", (("state", "online"),))] == 4


def test_every_rejection_reason_has_a_kind():
    """Each reason parse_message gives maps to a named kind (none falls into 'other')."""
    cases = [
        ("ecolens/a/result", b"\xff"),
        ("ecolens/a/result", b"[]"),
        ("ecolens/a/result", b"{}"),
        ("ecolens/a/status", b"maybe"),
        ("ecolens/a/status", b"{bad"),
        ("elsewhere/a/result", b"{}"),
        ("ecolens/a/result", b"\xef\xbb\xbf{}"),
        ("ecolens/a/result", b"[" * 100 + b"]" * 100),
        ("ecolens/a/result", b"x" * 70_000),
    ]
    kinds = []
    for topic, payload in cases:
        parsed = parse_message("ecolens", topic, payload, 0, 65_536)
        assert isinstance(parsed, Rejected), parsed
        kinds.append(reason_kind(parsed))
    assert "other" not in kinds, kinds


def daemon_metric_names() -> set[str]:
    """The sample names of the daemon's collectors (its real scrape is checked in
    tests/test_daemon_web.py)."""
    from ecolens.edge.daemon.metrics import DaemonMetrics

    daemon = DaemonMetrics()
    daemon.inference.observe(0.02)
    daemon.watch(
        lambda: {
            "frames_read": 1, "published": 1, "queue_dropped": 0, "skipped_uncertain": 0,
            "source_reopens": 0, "items_by_label": {"plastic": 1}, "uncertain": 0, "queue_depth": 0,
            "mqtt_connected": True, "uptime_s": 1.0, "model": {"name": "m", "version": "1"},
            "store_errors": 0, "unqueued": 0, "camera": "up",
        }
    )  # fmt: skip
    return {name for name, _ in samples(daemon.render()[0].decode())}


def scrape_running_service(mosquitto, tmp_path) -> str:
    """/metrics of `ecolens aggregate`'s own service (aggregator, canary supervision, dashboard)
    on a real Mosquitto, after a small fleet sent results, statuses and stats, and one bin sent
    stats no daemon would (refused) and a growing queue."""
    import time

    from ecolens.fleet.config import load_fleet_config
    from ecolens.fleet.service import FleetService
    from ecolens.fleet.storage.binstats import read_stats

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    overrides = {
        "mqtt.host": mosquitto.host, "mqtt.port": mosquitto.port, "mqtt.client_id": "agg-scrape",
        "storage.url": url, "http.port": 0,
    }  # fmt: skip
    service = FleetService(load_fleet_config(None, overrides)).start()
    try:
        simulate(mosquitto, count=40, bins=3)
        broker = {"hostname": mosquitto.host, "port": mosquitto.port}
        publish.single("ecolens/bin-001/result", b"{not json", qos=1, **broker)  # one rejection
        hostile = [b"[1]", json.dumps({"queue_depth": -5}), json.dumps({"cpu_percent": "hot"})]
        for payload in [*hostile, json.dumps({"queue_depth": 35, "inference_ms_p95": 900.0})]:
            publish.single("ecolens/bin-002/stats", payload, qos=0, **broker)
        deadline = time.monotonic() + 30
        while True:  # the writer stores the bins' newest stats every 2 s
            database = open_database(url, migrate=False)
            stats = read_stats(database)
            database.close()
            if len(stats) == 3 and stats["bin-002"].queue_depth == 35:
                break
            assert time.monotonic() < deadline, stats
            time.sleep(0.2)
        assert service.aggregator is not None and service.aggregator.wait_idle()
        return requests.get(f"http://127.0.0.1:{service.server.port}/metrics", timeout=10).text
    finally:
        service.stop()


def test_bin_health_reaches_metrics_and_hostile_stats_are_refused(mosquitto, tmp_path):
    text = scrape_running_service(mosquitto, tmp_path)
    promtool_check(text)
    values = samples(text)
    assert values[("ecolens_fleet_ingest_stats_rejected_total", ())] == 3
    assert values[("ecolens_fleet_ingest_stats_received_total", ())] == 3 + 4  # 3 at start, 4 above
    assert values[("ecolens_fleet_bin_queue_depth", (("device_id", "bin-002"),))] == 35
    assert values[("ecolens_fleet_bin_inference_p95_seconds", (("device_id", "bin-002"),))] == 0.9
    assert values[("ecolens_fleet_bin_queue_depth", (("device_id", "bin-001"),))] == 0
    assert values[("ecolens_fleet_bin_camera_up", (("device_id", "bin-003"),))] == 1
    assert 0 < values[("ecolens_fleet_bin_memory_bytes", (("device_id", "bin-001"),))] < 2**30

    # Every series the Grafana dashboard and the shipped alert rules query is in this scrape (or
    # the daemon's, or Prometheus's own ``up``).
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    dashboard = json.loads((root / "docs" / "grafana-fleet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((root / "systemd" / "prometheus" / "ecolens-rules.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 40
    used = {name for expr in exprs for name in re.findall(r"\becolens_[a-z0-9_]+", expr)}
    missing = used - set(name for name, _ in values) - daemon_metric_names()
    assert not missing, missing
    assert {"ecolens_fleet_bin_queue_depth", "ecolens_fleet_canary_decisions_total"} <= used

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


def known_metric_names() -> set[str]:
    """Every sample name the aggregator and the daemon expose (rendered from their collectors)."""
    from ecolens.edge.daemon.metrics import DaemonMetrics
    from ecolens.fleet.metrics import render
    from ecolens.fleet.queries import BinStatus

    ingest = {
        "received": 1, "stored": 1, "duplicates": 0, "rejected": 1, "statuses": 0, "write_errors": 0,
        "refused_by_storage": 0, "connected": True, "writer": "running", "lag": 0, "lag_s": 0.1,
        "rejected_by_reason": {"contract": 1},
    }  # fmt: skip
    bins = [BinStatus("b", "online", "online", None, None, "up", "2026-01-01T00:00:00Z")]
    fleet_text = render(lambda: {"b": 0}, lambda: ingest, lambda: bins)[0]
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
    text = fleet_text.decode() + daemon.render()[0].decode()
    return {name for name, _ in samples(text)}


def test_grafana_dashboard_queries_only_metrics_that_exist():
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[1] / "docs" / "grafana-fleet.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    used = {name for expr in exprs for name in re.findall(r"\becolens_[a-z_]+", expr)}
    missing = used - known_metric_names()
    assert not missing, missing
    assert {"ecolens_fleet_ingest_stored_total", "ecolens_daemon_frame_to_puback_seconds_bucket"} <= used

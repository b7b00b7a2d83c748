"""The attacks of issue 11 on fleet ingest, against a real Mosquitto and the real aggregator on
SQLite and PostgreSQL: no message can stop ingest, a row the database refuses is isolated from
its batch, a dead writer stops the process, a missing extra fails at start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import requests
from ecolens.bench.mosquitto import free_port
from ecolens.bench.postgres import wait_until
from ecolens.core.contract import make_result
from ecolens.fleet.storage import open_database

from ecolens.cli import main
from tests.test_fleet_ingest import LABELS, MODEL, aggregator, publish_raw, simulate, stored_event_ids

GOOD = make_result(LABELS, (0.1, 0.9), MODEL, 20.0, device_id="bin-x", event_id="good-1", frames=2)
GOOD_TEXT = json.dumps(GOOD)


def with_field(raw_json_value: str, name: str) -> bytes:
    """GOOD with one field set to a raw JSON token (NaN, 1e30 ... cannot come from json.dumps)."""
    body = dict(GOOD, event_id=f"hostile-{name}")
    body[name] = "__X__"
    return json.dumps(body).replace('"__X__"', raw_json_value).encode()


HOSTILE: list[tuple[str, bytes]] = [
    ("ecolens/bin-x/result", b"[" * 200_000),  # over the size limit
    ("ecolens/bin-x/result", b"[" * 60_000),  # under it, but deep enough to crash json
    ("ecolens/bin-x/result", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("ecolens/bin-x/result", b'"' + b'\\"' * 30_000),  # quadratic for a naive string scanner
    ("ecolens/bin-x/result", json.dumps(dict(GOOD, scores={f"l{n}": 0.0 for n in range(5000)})).encode()),
    ("ecolens/bin-x/status", b"{" + b'"a":{' * 5000),
    ("ecolens/bin-x/result", GOOD_TEXT.encode("utf-16")),  # with a byte-order mark
    ("ecolens/bin-x/result", json.dumps(dict(GOOD, event_id="utf16le")).encode("utf-16-le")),
    ("ecolens/bin-x/result", json.dumps(dict(GOOD, event_id="bom8")).encode("utf-8-sig")),
    ("ecolens/bin-x/result", with_field("NaN", "confidence")),
    ("ecolens/bin-x/result", with_field("Infinity", "inference_ms")),
    ("ecolens/bin-x/result", with_field("1e400", "inference_ms")),
    ("ecolens/bin-x/result", with_field("1e30", "frames")),
    ("ecolens/bin-x/result", with_field(str(2**31), "frames")),
    ("ecolens/bin-x/result", with_field(str(2**64), "frames")),
    ("ecolens/bin-x/result", with_field(str(2**63), "seq")),
    ("ecolens/bin-x/result", with_field('"\\ud800"', "event_id")),
    ("ecolens/bin-x/result", with_field('"a\\u0000b"', "source")),
    ("ecolens/bin-x/result", with_field('"a\\u0000b"', "event_id")),
    ("ecolens/bin-x/result", with_field('"' + "e" * 3000 + '"', "event_id")),  # PG index row limit
    ("ecolens/bin-x/result", with_field('"0000-01-01T00:00:00Z"', "timestamp")),
    ("ecolens/bin-x/result", with_field('"2024-01-01T23:59:60Z"', "timestamp")),
    ("ecolens/bin-x/result", with_field('"2024-02-30T10:00:00Z"', "timestamp")),
    ("ecolens/bin-x/result", json.dumps(dict(GOOD, event_id="k", scores={"\ud800": 0.5})).encode()),
    ("ecolens/bin-x/result", b'{"label": "\xed\xa0\x80"}'),  # a surrogate encoded as UTF-8 bytes
    ("ecolens/bin-x/status", b'{"status": "online\\u0000"}'),
    ("ecolens/bin-x/status", b"\xff\xfeo\x00n\x00"),
    ("ecolens/" + "d" * 1000 + "/result", GOOD_TEXT.encode()),
]


def rejected_reasons(url: str) -> list[str]:
    database = open_database(url, migrate=False)
    try:
        return [row[0] for row in database.query("SELECT reason FROM rejected")]
    finally:
        database.close()


def test_hostile_messages_then_200_valid_results_are_all_stored(mosquitto, database_url, tmp_path):
    """The real `ecolens aggregate` process: every attack of the issue is rejected and
    acknowledged, the 200 valid results after it are stored within seconds, health is green."""
    port = free_port()
    config = tmp_path / "fleet.toml"
    config.write_text(
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id = "agg-hostile"\n'
        f'[storage]\nurl = "{database_url}"\n[http]\nport = {port}\n'
    )
    log = tmp_path / "aggregate.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecolens.cli", "aggregate", "--config", str(config)], stderr=stderr
        )
    try:
        assert wait_until(lambda: "aggregating" in log.read_text(), timeout=30), log.read_text()
        # The same 200 results without hostile messages first: the baseline of this machine now.
        started = time.monotonic()
        clean = simulate(mosquitto, count=200, bins=4, seed=10)
        assert wait_until(lambda: len(stored_event_ids(database_url)) >= 200, timeout=60, interval=0.1)
        baseline = time.monotonic() - started
        publish_raw(mosquitto, HOSTILE)
        started = time.monotonic()
        published = simulate(mosquitto, count=200, bins=4, seed=11)
        assert wait_until(lambda: len(stored_event_ids(database_url)) >= 400, timeout=60, interval=0.1), (
            log.read_text()[-3000:]
        )
        took = time.monotonic() - started
        assert wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
                          .json()["ingest"]["lag"] == 0, timeout=30)  # fmt: skip
        health = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    print(
        f"200 valid results after {len(HOSTILE)} hostile messages stored in {took:.2f}s "
        f"({baseline:.2f}s without)"
    )
    assert code == 0, log.read_text()[-3000:]
    # "within seconds" (issue 11), against this machine's own rate in the same run: a payload
    # that stalls the writer (a quadratic scan took 39 s for one of the messages above, 100x
    # the 0.4 s of 200 results) blows this bound on any machine
    assert took < 10 * baseline + 2.0, (took, baseline)
    assert "Traceback" not in log.read_text()
    assert sorted(stored_event_ids(database_url)) == sorted(published.event_ids + clean.event_ids)
    assert health.status_code == 200
    ingest = health.json()["ingest"]
    assert ingest["writer"] == "running" and ingest["connected"] and ingest["lag"] == 0
    assert ingest["rejected"] == len(HOSTILE) and ingest["refused_by_storage"] == 0
    assert len(rejected_reasons(database_url)) == len(HOSTILE)

    # Every hostile message was acknowledged: a restart under the same session gets nothing again.
    again = aggregator(mosquitto, database_url, "agg-hostile").start()
    try:
        # a result published now comes after anything the session still held: once it is stored,
        # a redelivered message would have been received too
        marker = dict(GOOD, event_id="after-restart")
        publish_raw(mosquitto, [("ecolens/bin-x/result", json.dumps(marker).encode())])
        assert wait_until(lambda: "after-restart" in stored_event_ids(database_url), timeout=30)
        assert again.wait_idle()
        snap = again.stats.snapshot()
        assert snap["received"] == snap["statuses"] + 1  # the retained statuses and the marker only
    finally:
        again.stop()


def poison_one_event_id(url: str, event_id: str) -> None:
    """A database rule (trigger / CHECK) that refuses one row: a storage error no validation
    can foresee (a constraint added by an operator, a full tablespace on one page ...)."""
    database = open_database(url)
    try:
        if database.kind == "sqlite":
            database.execute(
                f"CREATE TRIGGER poison BEFORE INSERT ON results WHEN NEW.event_id = '{event_id}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the poison trigger'); END"
            )
        else:
            database.execute(f"ALTER TABLE results ADD CONSTRAINT poison CHECK (event_id <> '{event_id}')")
    finally:
        database.close()


def test_a_row_the_database_refuses_is_isolated_from_its_batch(mosquitto, database_url):
    poison_one_event_id(database_url, "poison")
    results = [
        make_result(LABELS, (0.3, 0.7), MODEL, 10.0, device_id="bin-p", event_id=f"ok-{i}") for i in range(40)
    ]
    results.insert(17, dict(results[0], event_id="poison"))
    agg = aggregator(mosquitto, database_url, "agg-poison", batch_size=100, batch_wait_ms=2000).start()
    try:
        publish_raw(mosquitto, [("ecolens/bin-p/result", json.dumps(r).encode()) for r in results])
        assert wait_until(lambda: agg.stats.snapshot()["lag"] == 0, timeout=30)
        stats = agg.stats.snapshot()
    finally:
        agg.stop()
    assert sorted(stored_event_ids(database_url)) == sorted(f"ok-{i}" for i in range(40))
    assert stats["stored"] == 40 and stats["rejected"] == 1 and stats["refused_by_storage"] == 1
    assert stats["batches"] <= 3  # one batch (a second if the broker split it), not 41
    [reason] = rejected_reasons(database_url)
    assert reason.startswith("storage refused it") and "poison" in reason


def test_a_dead_writer_stops_the_process_with_a_non_zero_exit(mosquitto, tmp_path, monkeypatch, capsys):
    """Fault injection: the parser raises on one message, as an unforeseen bug would."""
    import ecolens.fleet.subscriber as subscriber

    real_parse = subscriber.parse_message

    def parse_or_crash(prefix, topic, payload, received_ms, limit):
        if payload == b"crash":
            raise RuntimeError("an unforeseen bug")
        return real_parse(prefix, topic, payload, received_ms, limit)

    monkeypatch.setattr(subscriber, "parse_message", parse_or_crash)
    port = free_port()

    def publish_when_up() -> None:
        wait_until(lambda: _answers(port), timeout=30)
        publish_raw(mosquitto, [("ecolens/bin-x/result", b"crash")])

    thread = threading.Thread(target=publish_when_up, daemon=True)
    thread.start()
    code = main(
        [
            "aggregate", "--broker", mosquitto.url, "--database", f"sqlite:///{tmp_path / 'f.db'}",
            "--http-port", str(port), "--client-id", "agg-dies",
        ]
    )  # fmt: skip
    thread.join(10)
    assert code == 2
    err = capsys.readouterr().err
    assert "ecolens aggregate: error: the writer thread stopped: RuntimeError: an unforeseen bug" in err


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_health_reports_a_dead_writer_as_503(mosquitto, tmp_path, monkeypatch):
    import ecolens.fleet.subscriber as subscriber
    from ecolens.fleet.config import ReportSection
    from ecolens.fleet.web import create_app

    monkeypatch.setattr(subscriber, "parse_message", lambda *args: 1 / 0)
    url = f"sqlite:///{tmp_path / 'f.db'}"
    agg = aggregator(mosquitto, url, "agg-503").start()
    client = create_app(lambda: open_database(url, migrate=False), ReportSection(), agg.stats.snapshot)
    client = client.test_client()
    try:
        assert client.get("/api/health").status_code == 200
        publish_raw(mosquitto, [("ecolens/bin-x/result", GOOD_TEXT.encode())])
        assert agg.failed.wait(20)
        health = client.get("/api/health")
        metrics = client.get("/metrics").text
    finally:
        agg.stop()
    assert "ecolens_fleet_writer_running 0.0" in metrics and "ecolens_fleet_ingest_lag 1.0" in metrics
    assert health.status_code == 503
    body = health.json
    assert body["ok"] is False and body["ingest"]["writer"] == "dead" and body["ingest"]["lag"] == 1
    assert "ZeroDivisionError" in body["ingest"]["last_error"]


def test_aggregate_without_the_fleet_extra_fails_at_start_with_the_pip_command(mosquitto, tmp_path):
    """jsonschema shadowed by a package that cannot be imported, as on an `edge`-only install."""
    shadow = tmp_path / "shadow" / "jsonschema"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'jsonschema'\", name='jsonschema')\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ecolens.cli",
            "aggregate",
            "--broker",
            mosquitto.url,
            "--database",
            f"sqlite:///{tmp_path / 'f.db'}",
            "--no-http",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": f"{shadow.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    assert done.returncode == 2
    assert "pip install 'jsonschema>=" in done.stderr and "ecolens[fleet]" in done.stderr
    assert "aggregating" not in done.stderr and "Traceback" not in done.stderr


def test_health_shows_a_storage_outage_and_clears_it_after_recovery(mosquitto, tmp_path):
    """The database's disk fills up under a running aggregator (a real tmpfs): messages wait
    unacknowledged, health says why; once there is room, all are stored and last_error clears."""
    from ecolens.fleet.config import ReportSection
    from ecolens.fleet.web import create_app

    from tests.support.disks import fill, small_tmpfs

    with small_tmpfs(tmp_path / "disk", "8m") as disk:
        url = f"sqlite:///{disk / 'fleet.db'}"
        agg = aggregator(mosquitto, url, "agg-full", batch_wait_ms=0).start()
        client = create_app(
            lambda: open_database(url, migrate=False), ReportSection(), agg.stats.snapshot
        ).test_client()
        try:
            filler = fill(disk)
            published = simulate(mosquitto, count=300, bins=3, seed=21)
            assert wait_until(
                lambda: (agg.stats.snapshot()["last_error"] or "").startswith("storage"), timeout=30
            )
            during = client.get("/api/health").json["ingest"]
            assert during["lag"] > 0 and "full" in during["last_error"]
            filler.unlink()
            assert wait_until(lambda: agg.stats.snapshot()["lag"] == 0, timeout=60)
            after = client.get("/api/health").json
        finally:
            agg.stop()
        assert sorted(stored_event_ids(url)) == sorted(published.event_ids)
    assert after["ok"] is True and after["ingest"]["last_error"] is None
    assert after["ingest"]["write_errors"] >= 1 and after["ingest"]["rejected"] == 0

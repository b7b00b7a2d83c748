"""[storage] limits on what anyone on the broker can make grow (refused messages, status
events), on a real SQLite and a real PostgreSQL, and applied by a running aggregator to a flood
of garbage from a real Mosquitto while results are still stored."""

from __future__ import annotations

import time

import paho.mqtt.publish as publish
import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.config import SubscriberSection
from ecolens.fleet.config.storage import StorageSection
from ecolens.fleet.queries import missing_results
from ecolens.fleet.retention import DAY_MS, prune
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.subscriber import Aggregator

NOW = 1_764_000_000_000


def count(url: str, table: str) -> int:
    database = open_database(url, migrate=False)
    try:
        return int(database.query(f"SELECT COUNT(*) FROM {table}")[0][0])
    finally:
        database.close()


def test_old_and_surplus_rows_go_newest_stay(database_url: str) -> None:
    database = open_database(database_url)
    store = ResultStore(database)
    old = [Rejected(NOW - 40 * DAY_MS + i, "ecolens/x/result", "old", "{}") for i in range(50)]
    recent = [Rejected(NOW - 1000 + i, "ecolens/x/result", "recent", "{}") for i in range(150)]
    statuses = [
        StatusUpdate("bin-1", "online", NOW - 500 * DAY_MS),
        StatusUpdate("bin-1", "offline", NOW - 5),
    ]
    store.write(rejected=old + recent, statuses=statuses)

    pruned = prune(database, NOW, keep_rejected_days=30, max_rejected_rows=100, keep_status_days=400)
    assert (pruned.rejected, pruned.status_events) == (100, 1)
    kept = sorted(row[0] for row in database.query("SELECT received_ms FROM rejected"))
    assert kept == [r.received_ms for r in recent[50:]]  # the newest 100
    assert database.query("SELECT status FROM status_events") == [("offline",)]
    assert prune(database, NOW, 30, 100, 400).rejected == 0  # nothing more to do
    database.close()


def result(device: str, seq: int, seen_ms: int) -> StoredResult:
    return StoredResult(
        event_id=f"{device}-{seq}", device_id=device, seen_ms=seen_ms, received_ms=seen_ms,
        label="plastic", confidence=0.9, uncertain=False, inference_ms=5.0, frames=1,
        model_name="m", model_version="1", model_sha256="a" * 64, payload="{}", seq=seq,
    )  # fmt: skip


def test_old_results_go_and_are_not_counted_as_missing(database_url: str) -> None:
    database = open_database(database_url)
    store = ResultStore(database)
    old, recent = NOW - 40 * DAY_MS, NOW - 1000
    rows = [result("bin-1", n, old + n if n <= 5 else recent + n) for n in range(1, 11) if n not in (3, 8)]
    store.write(rows + [result("bin-2", n, recent + n) for n in (1, 2, 3)])
    assert missing_results(database) == {"bin-1": 2}  # 3 and 8

    assert prune(database, NOW, 30, 100_000, 400, keep_results_days=0).results == 0  # 0: forever
    pruned = prune(database, NOW, 30, 100_000, 400, keep_results_days=30)
    assert pruned.results == 4  # bin-1's 1, 2, 4, 5
    assert database.query("SELECT pruned_seq FROM devices WHERE device_id = 'bin-1'") == [(5,)]
    assert missing_results(database) == {"bin-1": 1}  # 8: 3 was older than the retention
    store.write([result("bin-1", 11, NOW)])
    assert missing_results(database, complete_too=True) == {"bin-1": 1, "bin-2": 0}
    database.close()


def test_a_running_aggregator_bounds_a_flood_of_garbage(mosquitto, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    database = open_database(url)
    ResultStore(database).write(rejected=[Rejected(1, "ecolens/x/result", "ancient", "{}")])
    database.close()
    limits = StorageSection(url=url, max_rejected_rows=100, prune_interval_s=1)
    aggregator = Aggregator(
        BrokerSection(host=mosquitto.host, port=mosquitto.port),
        SubscriberSection(),
        lambda: open_database(url, migrate=False),
        client_id="retention-test",
        retention=limits,
    ).start()
    try:
        assert wait_until(lambda: count(url, "rejected") == 0, timeout=10)  # pruned at start
        garbage = [{"topic": "ecolens/bin-9/result", "payload": b"garbage %d" % i} for i in range(300)]
        publish.multiple(garbage, port=mosquitto.port)
        assert wait_until(lambda: aggregator.stats.rejected == 300, timeout=30), aggregator.stats
        time.sleep(1.5)  # the next prune is due after 1 s
        assert wait_until(lambda: count(url, "rejected") <= 100, timeout=10), count(url, "rejected")
        assert aggregator.stats.writer == "running"
    finally:
        aggregator.stop()


def test_limits_are_checked_when_the_settings_are_read() -> None:
    with pytest.raises(ValueError, match="max_rejected_rows"):
        StorageSection(max_rejected_rows=5)


def test_a_cutoff_in_fractional_days_keeps_the_result_seen_exactly_at_it(tmp_path) -> None:
    """2,894,980,006 ms as days (33.506713032407404) times DAY_MS is 2,894,980,005.9999995 in
    floats: truncated, the cutoff moved 1 ms later and pruned the result seen exactly at it (a
    rollups test failed so in about 1 run in 20: its cutoff follows the clock)."""
    from ecolens.fleet.retention import days_ms
    from ecolens.fleet.storage import open_database
    from ecolens.fleet.storage.store import ResultStore, StoredResult

    delta = 2_894_980_006
    assert int(delta / DAY_MS * DAY_MS) == delta - 1  # the float product this guards against
    assert days_ms(delta / DAY_MS) == delta
    database = open_database(f"sqlite:///{tmp_path / 'fleet.db'}")
    now = 1_800_000_000_000
    rows = [
        StoredResult(
            f"e{i}", "bin-1", seen, now, "plastic", 0.9, False, 1.0, 1, "m", "1", "a" * 64, "{}", i + 1
        )
        for i, seen in enumerate((now - delta - 1, now - delta, now - delta + 1))
    ]
    ResultStore(database).write(rows)
    pruned = prune(database, now, 30, 100_000, 400, keep_results_days=delta / DAY_MS)
    assert pruned.results == 1  # only the one seen before the cutoff
    assert [r[0] for r in database.query("SELECT event_id FROM results ORDER BY seen_ms")] == ["e1", "e2"]
    database.close()

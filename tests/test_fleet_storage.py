"""Storage and queries on a real SQLite file and a real PostgreSQL: the same statements must
give the same answers on both."""

from __future__ import annotations

import sqlite3

import pytest
from ecolens.core.errors import ConfigError
from ecolens.fleet import queries
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.schema import SCHEMA_VERSION, current_version
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.timewindow import BUCKETS_MS, TimeWindow

HOUR = 3_600_000
T0 = 1_714_550_400_000  # 2024-05-01T08:00:00Z, on an hour boundary


@pytest.fixture
def store(database_url):
    database = open_database(database_url)
    try:
        yield ResultStore(database)
    finally:
        database.close()


def stored(event_id: str, device_id: str, label: str, seen_ms: int, uncertain=False):
    return StoredResult(
        event_id=event_id, device_id=device_id, seen_ms=seen_ms, received_ms=seen_ms + 50,
        label=label, confidence=0.9, uncertain=uncertain, inference_ms=20.0, frames=1,
        model_name="m", model_version="1", model_sha256="a" * 64, payload="{}",
    )  # fmt: skip


def test_schema_is_created_once_and_reopening_keeps_data(database_url):
    first = open_database(database_url)
    ResultStore(first).write([stored("e1", "bin-1", "plastic", T0)])
    first.close()
    again = open_database(database_url)
    assert current_version(again) == SCHEMA_VERSION
    assert again.query("SELECT COUNT(*) FROM fleet_schema")[0][0] == SCHEMA_VERSION
    assert again.query("SELECT event_id FROM results") == [("e1",)]
    again.close()


def test_an_older_schema_is_upgraded_in_place(database_url, monkeypatch):
    from ecolens.fleet.storage import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    old = open_database(database_url)
    old.execute(  # a version-1 row: no seq column yet
        "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        stored("kept", "bin-1", "plastic", T0)[:13],
    )
    old.close()
    monkeypatch.undo()
    upgraded = open_database(database_url)
    assert current_version(upgraded) == SCHEMA_VERSION == 11
    assert upgraded.query("SELECT event_id, seq FROM results") == [("kept", None)]
    upgraded.close()


def test_a_rollout_recorded_before_errors_were_compared_gets_the_default(database_url, monkeypatch):
    from ecolens.fleet.canary.records import StagedRollout, load_rollout
    from ecolens.fleet.storage import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 6)
    old = open_database(database_url)
    old.execute(  # a version-6 row: no max_error_delta column yet
        "INSERT INTO rollouts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("r0", "ab", "m", "2", "bin-01", T0, 600.0, 10, 0.25, 0.15, "watching", None, None),
    )
    old.close()
    monkeypatch.undo()
    upgraded = open_database(database_url)
    loaded = load_rollout(upgraded, "r0")
    assert loaded is not None and loaded.max_error_delta == StagedRollout.max_error_delta == 0.1
    assert loaded.min_canaries == StagedRollout.min_canaries == 3  # NULL before version 9
    upgraded.close()


def test_a_newer_schema_is_refused(database_url):
    database = open_database(database_url)
    database.execute("INSERT INTO fleet_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    database.close()
    with pytest.raises(ConfigError, match="newer than this ecolens"):
        open_database(database_url)


def test_duplicate_event_ids_are_stored_once(store):
    outcome = store.write([stored("e1", "bin-1", "plastic", T0), stored("e2", "bin-1", "plastic", T0)])
    assert (outcome.stored, outcome.duplicates) == (2, 0)
    outcome = store.write(
        [stored("e2", "bin-1", "plastic", T0), stored("e3", "bin-1", "non_plastic", T0),
         stored("e3", "bin-1", "non_plastic", T0)]
    )  # fmt: skip
    assert (outcome.stored, outcome.duplicates) == (1, 2)
    assert store.database.query("SELECT COUNT(*) FROM results")[0][0] == 3


def test_status_and_last_result_per_bin(store):
    store.write(statuses=[StatusUpdate("bin-1", "online", T0)])
    store.write([stored("e1", "bin-1", "plastic", T0 + 5 * HOUR)])
    store.write([stored("e0", "bin-1", "plastic", T0 + HOUR)])  # late, older result
    # The retained status delivered again later keeps the time it changed.
    store.write(statuses=[StatusUpdate("bin-1", "online", T0 + 9 * HOUR)])
    store.write(statuses=[StatusUpdate("bin-2", "online", T0), StatusUpdate("bin-2", "offline", T0 + 1)])
    rows = store.database.query(
        "SELECT device_id, status, status_ms, last_result_ms FROM devices ORDER BY device_id"
    )
    assert [tuple(r) for r in rows] == [
        ("bin-1", "online", T0, T0 + 5 * HOUR),
        ("bin-2", "offline", T0 + 1, None),
    ]


def test_rejected_messages_are_kept(store):
    store.write(rejected=[Rejected(T0, "ecolens/x/result", "not JSON", "{")])
    window = TimeWindow(T0 - 1, T0 + 1)
    assert queries.rejected_count(store.database, window) == 1


def test_summary_series_and_status_queries(store):
    results = []
    # bin-1: 3 plastic + 1 non_plastic in hour 0, 1 plastic in hour 2; bin-2: 2 non_plastic.
    for i, (device, label, offset) in enumerate(
        [("bin-1", "plastic", 0), ("bin-1", "plastic", 10), ("bin-1", "plastic", HOUR - 1),
         ("bin-1", "non_plastic", 5), ("bin-1", "plastic", 2 * HOUR + 7),
         ("bin-2", "non_plastic", HOUR), ("bin-2", "non_plastic", HOUR + 1),
         ("bin-2", "plastic", 30 * HOUR)]  # outside the window
    ):  # fmt: skip
        results.append(stored(f"e{i}", device, label, T0 + offset, uncertain=(i == 3)))
    store.write(results, statuses=[StatusUpdate("bin-2", "offline", T0)])
    window = TimeWindow(T0, T0 + 24 * HOUR)

    summaries = {s.device_id: s for s in queries.bin_summaries(store.database, window, "plastic")}
    assert summaries["bin-1"].labels == {"plastic": 4, "non_plastic": 1}
    assert (summaries["bin-1"].items, summaries["bin-1"].plastic) == (5, 4)
    assert summaries["bin-1"].plastic_share == 0.8
    assert summaries["bin-1"].uncertain == 1
    assert (summaries["bin-2"].items, summaries["bin-2"].plastic_share) == (2, 0.0)

    points = queries.series(store.database, window, BUCKETS_MS["hour"], "plastic")
    assert [(p.bucket_start, p.device_id, p.items, p.plastic) for p in points] == [
        ("2024-05-01T08:00:00Z", "bin-1", 4, 3),
        ("2024-05-01T09:00:00Z", "bin-2", 2, 0),
        ("2024-05-01T10:00:00Z", "bin-1", 1, 1),
    ]
    daily = queries.series(store.database, window, BUCKETS_MS["day"], "plastic", "bin-1")
    assert [(p.bucket_start, p.items) for p in daily] == [("2024-05-01T00:00:00Z", 5)]

    now = T0 + 4 * HOUR  # bin-1: last result about 2 h after T0
    states = {s.device_id: s.state for s in queries.bin_statuses(store.database, now, 3600)}
    assert states == {"bin-1": "unknown", "bin-2": "offline"}
    store.write(statuses=[StatusUpdate("bin-1", "online", T0)])
    states = {s.device_id: s.state for s in queries.bin_statuses(store.database, now, 3600)}
    assert states["bin-1"] == "stale"  # says online, but nothing heard for 2 h > 1 h
    states = {s.device_id: s.state for s in queries.bin_statuses(store.database, now, 3 * 3600)}
    assert states["bin-1"] == "online"
    states = {s.device_id: s.state for s in queries.bin_statuses(store.database, now, 0)}
    assert states["bin-1"] == "online"  # 0: never stale


def test_sqlite_url_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="folder does not exist"):
        open_database(f"sqlite:///{tmp_path}/missing/fleet.db")
    with pytest.raises(ConfigError, match="must start with sqlite:/// or postgresql://"):
        open_database("mysql://x")
    (tmp_path / "garbage.db").write_bytes(b"not a database" * 100)
    with pytest.raises((ConfigError, sqlite3.DatabaseError)):
        open_database(f"sqlite:///{tmp_path}/garbage.db")


def test_unreachable_postgresql_is_a_config_error():
    from ecolens.bench.mosquitto import free_port

    with pytest.raises(ConfigError, match="cannot connect to PostgreSQL"):
        open_database(f"postgresql://nobody@127.0.0.1:{free_port()}/db")

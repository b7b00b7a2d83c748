"""Rollups (issue 30) on a real SQLite and a real PostgreSQL: they equal a recomputation from raw
results after duplicates, refused batches, retention and a writer killed mid-batch; reports over
windows not aligned to hours equal counts taken straight from the stored rows; an existing
database upgrades (PostgreSQL: into week partitions) with progress on stderr; `ecolens rollups
check` finds a difference and says so with exit 1."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from ecolens.bench.postgres import wait_until
from ecolens.fleet import queries, rollupcheck
from ecolens.fleet.report import build_report
from ecolens.fleet.retention import DAY_MS, prune
from ecolens.fleet.storage import open_database, partitions
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult
from ecolens.fleet.timewindow import BUCKETS_MS, TimeWindow, iso

HOUR = 3_600_000
NOW = int(time.time() * 1000)
START = NOW - 40 * DAY_MS  # results spread over the last 40 days


def make_rows(count: int, seed: int = 1, bins: int = 6) -> list[StoredResult]:
    """Results over 40 days; each bin numbers its results, with a few numbers never sent."""
    rng = random.Random(seed)
    rows, numbers = [], Counter()
    for i in range(count):
        device = f"bin-{rng.randrange(bins)}"
        numbers[device] += 1 + (rng.random() < 0.03)  # a gap now and then
        seen = START + rng.randrange(40 * DAY_MS)
        rows.append(
            StoredResult(
                f"{seed}-{i}", device, seen, seen + 30, rng.choice(["plastic", "non_plastic", "metal"]),
                rng.random(), rng.random() < 0.1, 12.0, 1, "m", rng.choice(["1.0", "1.1"]), "a" * 64, "{}",
                None if device == "bin-0" and i % 7 == 0 else numbers[device],
            )
        )  # fmt: skip
    return rows


def assert_consistent(database) -> None:
    result = rollupcheck.check(database, TimeWindow(START - DAY_MS, NOW + DAY_MS))
    assert result.differences == [], result.differences[:5]
    assert result.cells > 0


def refuse_one_event_id(database, event_id: str) -> None:
    if database.kind == "sqlite":
        database.execute(
            f"CREATE TRIGGER poison BEFORE INSERT ON results WHEN NEW.event_id = '{event_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    else:
        database.execute(f"ALTER TABLE results ADD CONSTRAINT poison CHECK (event_id <> '{event_id}')")


def test_rollups_equal_raw_after_duplicates_refusals_retention_and_a_killed_writer(database_url, tmp_path):
    database = open_database(database_url)
    store = ResultStore(database)
    rows = make_rows(3000)
    for start in range(0, 2000, 250):
        store.write(rows[start : start + 250], [StatusUpdate("bin-1", "online", NOW)])
    # redelivered: a whole batch again, and a batch overlapping stored rows, with repeats inside
    assert store.write(rows[:250]).stored == 0
    outcome = store.write(rows[1900:2100] + rows[2050:2100])
    assert (outcome.stored, outcome.duplicates) == (100, 150)
    assert_consistent(database)

    # a batch the database refuses (one poisoned row) adds nothing, not even its good rows
    refuse_one_event_id(database, rows[2150].event_id)
    before = build_report(database, TimeWindow(START, NOW + DAY_MS), "day", "plastic", 3600)
    with pytest.raises(Exception, match="refused|poison"):
        store.write(rows[2100:2200], rejected=[Rejected(NOW, "ecolens/x/result", "not JSON", "{")])
    after = build_report(database, TimeWindow(START, NOW + DAY_MS), "day", "plastic", 3600)
    assert after["bins"] == before["bins"] and after["series"] == before["series"]
    assert store.write(rows[2100:2150] + rows[2151:2200]).stored == 99
    assert_consistent(database)

    # a writer process killed with SIGKILL while it writes batch after batch
    script = (
        "import sys; from tests.test_fleet_rollups import make_rows; "
        "from ecolens.fleet.storage import open_database, ResultStore; "
        "store = ResultStore(open_database(sys.argv[1], migrate=False)); rows = make_rows(20000, seed=2)\n"
        "for start in range(0, len(rows), 50): store.write(rows[start : start + 50])"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, database_url], cwd=os.getcwd())
    counted = lambda: int(database.query("SELECT COUNT(*) FROM results WHERE event_id LIKE '2-%'")[0][0])  # noqa: E731
    assert wait_until(lambda: counted() >= 1000, timeout=120)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    assert 1000 <= counted() < 20000
    assert_consistent(database)

    # retention deletes raw results; rollups keep them, the missing count still matches raw
    # (a window reaching into deleted history is aligned to hours: its edge hours come from rollups)
    old_window = TimeWindow(START - START % HOUR - DAY_MS, (NOW - 20 * DAY_MS) // HOUR * HOUR)
    kept = build_report(database, old_window, "day", "plastic", 3600)
    pruned = prune(database, NOW, 30, 100_000, 400, keep_results_days=20)
    assert pruned.results > 0
    left = database.query("SELECT COUNT(*) FROM results WHERE seen_ms < ?", (NOW - 20 * DAY_MS,))
    assert int(left[0][0]) == 0
    again = build_report(database, old_window, "day", "plastic", 3600)
    assert again["bins"] == kept["bins"] and again["totals"]["items"] == kept["totals"]["items"] > 0
    assert queries.missing_results(database, complete_too=True) == rollupcheck._missing_raw(database)
    assert_consistent(database)  # from the hour after the oldest kept result on
    store.write(rows[2200:])
    assert_consistent(database)
    database.close()


def brute_force(rows: list[StoredResult], window: TimeWindow, bucket_ms: int) -> tuple[dict, dict]:
    """Per bin {label: n}, and per (bucket, bin) [items, plastic], straight from the rows."""
    bins: dict[str, Counter] = {}
    series: dict[tuple[int, str], list[int]] = {}
    for row in {r.event_id: r for r in rows}.values():
        if window.since_ms <= row.seen_ms < window.until_ms:
            bins.setdefault(row.device_id, Counter())[row.label] += 1
            point = series.setdefault((row.seen_ms - row.seen_ms % bucket_ms, row.device_id), [0, 0])
            point[0] += 1
            point[1] += row.label == "plastic"
    return bins, series


def test_reports_over_windows_not_aligned_to_hours_equal_the_stored_rows(database_url):
    database = open_database(database_url)
    rows = make_rows(4000, seed=3)
    ResultStore(database).write(rows)
    rng = random.Random(4)
    windows = [TimeWindow(START + 17, START + 41 * DAY_MS)]  # everything
    for _ in range(8):
        since = START + rng.randrange(38 * DAY_MS)
        windows.append(
            TimeWindow(since, since + rng.choice([59_000, 90 * 60_000, 26 * HOUR, 9 * DAY_MS + 7]))
        )
    for window in windows:
        for bucket in ("minute", "hour", "day"):
            if bucket == "minute" and window.until_ms - window.since_ms > 2 * DAY_MS:
                continue
            report = build_report(database, window, bucket, "plastic", 3600)
            bins, series = brute_force(rows, window, BUCKETS_MS[bucket])
            assert {b["device_id"]: b["labels"] for b in report["bins"]} == {
                d: dict(c) for d, c in bins.items()
            }
            found = {
                (p["bucket_start"], p["device_id"]): [p["items"], p["plastic"]] for p in report["series"]
            }
            assert found == {(iso(b), d): v for (b, d), v in series.items()}, (window, bucket)
            one = build_report(database, window, bucket, "plastic", 3600, device_id="bin-2")
            assert [b["labels"] for b in one["bins"]] == ([dict(bins["bin-2"])] if "bin-2" in bins else [])
    # the newest result's model version, per bin, whichever piece of the window it sits in
    window = TimeWindow(START + 5, NOW + DAY_MS)
    newest = {}
    for row in sorted(rows, key=lambda r: r.seen_ms):
        newest[row.device_id] = row.model_version
    report = build_report(database, window, "day", "plastic", 3600)
    assert {b["device_id"]: b["model_version"] for b in report["bins"]} == newest
    database.close()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "ecolens.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_an_existing_database_upgrades_with_progress_and_check_finds_differences(database_url, monkeypatch):
    from ecolens.fleet.storage import schema

    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.version_creating("rollups") - 1)
    old = open_database(database_url)
    rows = make_rows(3000, seed=5)
    old.executemany(  # how the schema before rollups stored results
        """INSERT INTO results (event_id, device_id, seen_ms, received_ms, label, confidence, uncertain,
           inference_ms, frames, model_name, model_version, model_sha256, payload, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        rows,
    )
    old.executemany("INSERT INTO devices (device_id) VALUES (?)", [(f"bin-{n}",) for n in range(6)])
    expected_missing = rollupcheck._missing_raw(old)
    old.close()
    monkeypatch.undo()

    lines: list[str] = []
    database = open_database(database_url)
    assert database.query("SELECT MAX(version) FROM fleet_schema")[0][0] == schema.SCHEMA_VERSION
    database.close()
    checked = run_cli("rollups", "check", "--database", database_url, "--since", "60d")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "rollups equal raw results" in checked.stdout
    # a second upgrade run: nothing left to do, no progress printed
    database = open_database(database_url, progress=lines.append)
    assert lines == [] and database.query("SELECT COUNT(*) FROM fleet_jobs")[0][0] == 0
    assert queries.missing_results(database, complete_too=True) == expected_missing
    assert int(database.query("SELECT SUM(items) FROM rollups WHERE width_ms = ?", (DAY_MS,))[0][0]) == 3000
    if database.kind == "postgresql":
        assert partitions.is_partitioned(database)
        assert len(partitions.partitions(database)) >= 6  # 40 days of weeks, and a few ahead
    store = ResultStore(database)
    assert store.write(rows[:100]).stored == 0  # the dedup key holds after the move
    # a result deleted by hand: the check names the hour and the bin, exit 1; build repairs it
    gone = rows[10]
    database.execute("DELETE FROM results WHERE event_id = ?", (gone.event_id,))
    database.close()
    checked = run_cli("rollups", "check", "--database", database_url, "--since", "60d")
    assert checked.returncode == 1
    assert (
        f"hour {time.strftime('%Y-%m-%dT%H:00:00Z', time.gmtime(gone.seen_ms // 1000))} {gone.device_id}"
        in (checked.stdout)
    )
    assert "rollups differ from raw results" in checked.stdout
    built = run_cli("rollups", "build", "--database", database_url, "--since", "60d")
    assert built.returncode == 0, built.stderr
    assert run_cli("rollups", "check", "--database", database_url, "--since", "60d").returncode == 0


def test_upgrade_progress_goes_to_stderr(tmp_path, monkeypatch):
    from ecolens.fleet.storage import schema

    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.version_creating("rollups") - 1)
    old = open_database(url)
    old.executemany(
        """INSERT INTO results (event_id, device_id, seen_ms, received_ms, label, confidence, uncertain,
           inference_ms, frames, model_name, model_version, model_sha256, payload, seq)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        make_rows(2000, seed=6),
    )
    old.close()
    monkeypatch.undo()
    report = run_cli("report", "--database", url, "--since", "60d", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert "building rollups: 2,000 results done" in report.stderr
    assert '"items": 2000' in report.stdout


def test_postgresql_retention_drops_whole_week_partitions(postgres_url):
    database = open_database(postgres_url)
    week = partitions.WEEK_MS
    old_week = partitions.week_start(NOW) - 6 * week
    partitions.ensure(database, old_week, NOW)
    rows = [  # three weeks of results, one every 10 minutes
        StoredResult(f"w{i}", "bin-1", old_week + i * 600_000, NOW, "plastic", 0.9, False, 1.0, 1, "m", "1",
                     "a" * 64, "{}", i + 1)
        for i in range(3 * week // 600_000)
    ]  # fmt: skip
    ResultStore(database).write(rows)
    before = {name for name, _, _ in partitions.partitions(database)}
    cutoff_days = (NOW - (old_week + 2 * week)) / DAY_MS  # the cutoff is the end of the second week
    pruned = prune(database, NOW, 30, 100_000, 400, keep_results_days=cutoff_days)
    after = {name for name, _, _ in partitions.partitions(database)}
    dropped = before - after
    assert dropped == {partitions.partition_name("results", old_week + n * week) for n in (0, 1)}
    assert pruned.results == 2 * week // 600_000
    assert database.query("SELECT pruned_seq FROM devices WHERE device_id = 'bin-1'") == [(pruned.results,)]
    assert queries.missing_results(database, complete_too=True) == {"bin-1": 0}
    report = build_report(database, TimeWindow(old_week, old_week + 3 * week), "day", "plastic", 3600)
    assert report["totals"]["items"] == len(rows)  # the rollups keep what the partitions held
    database.close()


def test_seq_numbers_arriving_out_of_order_are_merged_and_counted_as_raw_counts_them(database_url):
    database = open_database(database_url)
    store = ResultStore(database)
    order = [9, 3, 4, 1, 12, 2, 8, 5, 7, 6, 11]  # 10 never arrives
    for n in order:
        store.write([StoredResult(f"o{n}", "bin-o", NOW + n, NOW, "plastic", 0.5, False, 1.0, 1, "m", "1",
                                  "a" * 64, "{}", n)])  # fmt: skip
        assert queries.missing_results(database, complete_too=True) == rollupcheck._missing_raw(database)
    assert queries.missing_results(database) == {"bin-o": 1}
    rows_before = int(database.query("SELECT COUNT(*) FROM seq_ranges")[0][0])
    prune(database, NOW, 30, 100_000, 400)  # the writer's periodic pass merges touching rows
    assert database.query("SELECT first_seq, last_seq FROM seq_ranges ORDER BY first_seq") == [
        (1, 9),
        (11, 12),
    ]
    assert rows_before >= 2 and queries.missing_results(database) == {"bin-o": 1}
    database.close()

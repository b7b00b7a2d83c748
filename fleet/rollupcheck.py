"""``ecolens rollups check``: recompute a window's rollups from raw results and list every
difference, so an operator (or a test) can prove that the figures reports show are the raw
results' figures. ``ecolens rollups build`` replaces a window's rollups with that recomputation.

Hours before the latest retention cutoff (``keep_results_days``) are left out: their raw results
are gone, and their rollups rightly keep more than the raw results still hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ecolens.core.errors import ConfigError
from ecolens.fleet.queries import missing_results
from ecolens.fleet.retention import pruned_before
from ecolens.fleet.storage import rollups, seq_ranges
from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.rollups import DAY_MS, HOUR_MS, bucket_sql, ceil_to, floor_to
from ecolens.fleet.timewindow import TimeWindow, iso

Key = tuple[int, str, str, str]
Sums = tuple[int, int, float, int]


@dataclass
class CheckResult:
    checked: TimeWindow | None  # whole hours compared (None: no stored results in the window)
    cells: int = 0
    differences: list[str] = field(default_factory=list)


def _hour_cells_raw(db: Database, since_ms: int, until_ms: int) -> dict[Key, Sums]:
    rows = db.query(
        f"""SELECT {bucket_sql("seen_ms", HOUR_MS)}, device_id, label, model_version, COUNT(*),
                   SUM(CASE WHEN uncertain THEN 1 ELSE 0 END), SUM(confidence), MAX(seen_ms)
            FROM results WHERE seen_ms >= ? AND seen_ms < ? GROUP BY 1, 2, 3, 4""",
        (since_ms, until_ms),
    )
    return {(int(r[0]), r[1], r[2], r[3]): (int(r[4]), int(r[5]), float(r[6]), int(r[7])) for r in rows}


def _cells(db: Database, width: int, since_ms: int, until_ms: int, of_width: int) -> dict[Key, Sums]:
    """Rollups of ``of_width`` in [since, until), summed per ``width`` bucket."""
    rows = db.query(
        f"""SELECT {bucket_sql("bucket_ms", width)}, device_id, label, model_version, SUM(items),
                   SUM(uncertain), SUM(confidence_sum), MAX(last_seen_ms)
            FROM rollups WHERE width_ms = ? AND bucket_ms >= ? AND bucket_ms < ? GROUP BY 1, 2, 3, 4""",
        (of_width, since_ms, until_ms),
    )
    return {(int(r[0]), r[1], r[2], r[3]): (int(r[4]), int(r[5]), float(r[6]), int(r[7])) for r in rows}


def _compare(name: str, expected: dict[Key, Sums], found: dict[Key, Sums], out: list[str]) -> None:
    for key in sorted(set(expected) | set(found)):
        want, got = expected.get(key, (0, 0, 0.0, 0)), found.get(key, (0, 0, 0.0, 0))
        same = (
            want[:2] == got[:2]
            and want[3] == got[3]
            and math.isclose(want[2], got[2], rel_tol=1e-9, abs_tol=1e-6)
        )
        if not same:
            bucket, device, label, version = key
            out.append(
                f"{name} {iso(bucket)} {device} {label} (model {version}): rollup items {got[0]}, "
                f"uncertain {got[1]}, confidence sum {got[2]:.6g}, newest {iso(got[3]) if got[0] else '-'}; "
                f"recomputed {want[0]}, {want[1]}, {want[2]:.6g}, {iso(want[3]) if want[0] else '-'}"
            )


def _missing_raw(db: Database) -> dict[str, int]:
    """The count of missing results straight from raw results (what the seq ranges replace)."""
    rows = db.query(
        """SELECT r.device_id, MAX(r.seq) - COALESCE(d.pruned_seq, 0)
                  - COUNT(DISTINCT CASE WHEN r.seq > COALESCE(d.pruned_seq, 0) THEN r.seq END)
           FROM results r LEFT JOIN devices d ON d.device_id = r.device_id
           WHERE r.seq IS NOT NULL GROUP BY r.device_id, d.pruned_seq"""
    )
    return {device: max(0, int(n)) for device, n in rows}


def check(db: Database, window: TimeWindow) -> CheckResult:
    """Compare the hour rollups of the window's whole hours with raw results, the day rollups of
    its whole days with those hours, and the missing-results count with raw results."""
    since = floor_to(window.since_ms, HOUR_MS)
    horizon = pruned_before(db)
    if horizon is not None:
        since = max(since, ceil_to(horizon, HOUR_MS))
    until = ceil_to(window.until_ms, HOUR_MS)
    result = CheckResult(TimeWindow(since, until) if since < until else None)
    if since < until:
        raw = _hour_cells_raw(db, since, until)
        _compare("hour", raw, _cells(db, HOUR_MS, since, until, HOUR_MS), result.differences)
        first_day, end_day = ceil_to(since, DAY_MS), floor_to(until, DAY_MS)
        if first_day < end_day:
            hours = _cells(db, DAY_MS, first_day, end_day, HOUR_MS)
            _compare("day", hours, _cells(db, DAY_MS, first_day, end_day, DAY_MS), result.differences)
        result.cells = len(raw)
    found, expected = missing_results(db, complete_too=True), _missing_raw(db)
    for device in sorted(set(found) | set(expected)):
        if found.get(device) != expected.get(device):
            result.differences.append(
                f"missing results of {device}: rollups say {found.get(device, 'nothing')}, "
                f"raw results {expected.get(device, 'nothing')}"
            )
    return result


def build(db: Database, window: TimeWindow) -> tuple[int, int]:
    """Recompute the rollups of the window's whole days (widened to days) from raw results, and
    every bin's seq ranges; returns (days, results counted). One transaction per day. Refuses
    days that retention may have thinned: their rollups would lose what was deleted."""
    first, end = floor_to(window.since_ms, DAY_MS), ceil_to(window.until_ms, DAY_MS)
    horizon = pruned_before(db)
    if horizon is not None and first < horizon:
        raise ConfigError(
            f"--since: raw results before {iso(horizon)} were deleted by keep_results_days; "
            f"rebuilding from {iso(first)} would drop them from the rollups: "
            f"start at {iso(ceil_to(horizon, DAY_MS))}"
        )
    counted = days = 0
    for day in range(first, end, DAY_MS):
        with db.transaction() as tx:
            counted += rollups.rebuild_days(tx, day, day + DAY_MS)
        days += 1
    for (device,) in db.query("SELECT device_id FROM devices ORDER BY device_id"):
        with db.transaction() as tx:
            seq_ranges.rebuild(tx, device)
    return days, counted

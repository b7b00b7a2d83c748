"""The questions operators ask, as SQL that runs unchanged on SQLite and PostgreSQL: how much
plastic each bin saw, per hour/day, and which bins are offline. Counts come from the rollups
(``windowcounts``); raw results only for a bin's newest ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecolens.fleet import windowcounts
from ecolens.fleet.storage import seq_ranges
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import TimeWindow, iso


@dataclass(frozen=True)
class BinSummary:
    device_id: str
    items: int
    plastic: int
    plastic_share: float | None
    uncertain: int
    labels: dict[str, int]
    uncertain_share: float | None = None
    model_version: str | None = None  # the newest result's, in the window


@dataclass(frozen=True)
class SeriesPoint:
    bucket_start: str
    device_id: str
    items: int
    plastic: int
    plastic_share: float | None


@dataclass(frozen=True)
class BinStatus:
    device_id: str
    state: str  # online, offline, stale (online but silent), unknown (no status seen)
    status: str | None
    status_since: str | None
    last_result: str | None
    camera: str | None  # up, down, starting: as the bin reports it while online
    last_seen: str | None = None  # the later of status_since and last_result


@dataclass(frozen=True)
class StatusEvent:
    at: str
    status: str


@dataclass(frozen=True)
class RecentResult:
    seen: str
    label: str
    confidence: float
    uncertain: bool
    inference_ms: float
    model_version: str


def _share(plastic: int, items: int) -> float | None:
    return round(plastic / items, 4) if items else None


def label_counts(db: Database, window: TimeWindow) -> list[tuple[str, str, int, int]]:
    """(device_id, label, items, uncertain) over the window."""
    counts: dict[tuple[str, str], list[int]] = {}
    for device, label, _, items, uncertain, _ in windowcounts.per_bin(db, window):
        entry = counts.setdefault((device, label), [0, 0])
        entry[0] += items
        entry[1] += uncertain
    return [
        (device, label, items, uncertain) for (device, label), (items, uncertain) in sorted(counts.items())
    ]


def bin_summaries(
    db: Database, window: TimeWindow, plastic_label: str, device_id: str | None = None
) -> list[BinSummary]:
    """Per bin: items, items per label, plastic count and share, uncertain share, and the model
    version of its newest result in the window (a fleet mid-rollout shows which bins still run the
    old model)."""
    by_bin: dict[str, dict[str, Any]] = {}
    for device, label, version, items, uncertain, newest in windowcounts.per_bin(db, window, device_id):
        entry = by_bin.setdefault(device, {"labels": {}, "uncertain": 0, "newest": (newest, version)})
        entry["labels"][label] = entry["labels"].get(label, 0) + items
        entry["uncertain"] += uncertain
        entry["newest"] = max(entry["newest"], (newest, version), key=lambda pair: pair[0])
    summaries = []
    for device_id, entry in by_bin.items():
        items = sum(entry["labels"].values())
        plastic = entry["labels"].get(plastic_label, 0)
        summaries.append(
            BinSummary(
                device_id,
                items,
                plastic,
                _share(plastic, items),
                entry["uncertain"],
                entry["labels"],
                _share(entry["uncertain"], items),
                entry["newest"][1],
            )
        )
    return summaries


def series(
    db: Database,
    window: TimeWindow,
    bucket_ms: int,
    plastic_label: str,
    device_id: str | None = None,
) -> list[SeriesPoint]:
    """Items and plastic share per UTC bucket (floored epoch ms) and bin."""
    return [SeriesPoint(**point) for point in series_dicts(db, window, bucket_ms, plastic_label, device_id)]


def series_dicts(
    db: Database,
    window: TimeWindow,
    bucket_ms: int,
    plastic_label: str,
    device_id: str | None = None,
) -> list[dict[str, Any]]:
    """``series`` as the report's JSON-ready dicts, built straight from the rows: a month of 500
    bins is 15,500 points, and an object per point (then a dict per object) was most of the
    report's time."""
    rows = windowcounts.per_bucket(db, window, bucket_ms, plastic_label, device_id)
    names = {bucket: iso(bucket) for bucket in {row[0] for row in rows}}
    return [  # _share inlined: a call per point was a tenth of the report
        {
            "bucket_start": names[bucket],
            "device_id": device,
            "items": items,
            "plastic": plastic,
            "plastic_share": round(plastic / items, 4) if items else None,
        }
        for bucket, device, items, plastic in rows
    ]


def bin_statuses(db: Database, now_ms: int, stale_after_s: int) -> list[BinStatus]:
    """Every bin ever heard from: its retained status, when it changed, its last result."""
    rows = db.query(
        "SELECT device_id, status, status_ms, last_result_ms, camera FROM devices ORDER BY device_id"
    )
    statuses = []
    for device_id, status, status_ms, last_result_ms, camera in rows:
        if status == "offline":
            state = "offline"
        elif status is None:
            state = "unknown"
        else:
            heard = max(x for x in (status_ms, last_result_ms) if x is not None)
            silent = stale_after_s and now_ms - heard > stale_after_s * 1000
            state = "stale" if silent else "online"
        heard_ms = max((x for x in (status_ms, last_result_ms) if x is not None), default=None)
        statuses.append(
            BinStatus(device_id, state, status, iso(status_ms), iso(last_result_ms), camera, iso(heard_ms))
        )
    return statuses


def missing_results(db: Database, device_id: str | None = None, complete_too: bool = False) -> dict[str, int]:
    """Per bin, results that never arrived: numbers from 1 (each bin starts there) to its
    highest stored ``seq`` that are not stored: lost in the broker, dropped from a bin's full
    queue, or sent before this database existed. Numbers up to the bin's ``pruned_seq`` (results
    deleted by [storage] keep_results_days) are not counted. Read from the seq ranges (a few rows
    per bin, kept at ingest) and one devices row per bin. Only bins with something missing are
    listed, unless ``complete_too`` (metrics: a 0)."""
    where, params = "", []
    if device_id is not None:
        where, params = "WHERE s.device_id = ?", [device_id]
    rows = db.query(
        f"""SELECT s.device_id, s.first_seq, s.last_seq, COALESCE(d.pruned_seq, 0)
            FROM seq_ranges s LEFT JOIN devices d ON d.device_id = s.device_id {where}
            ORDER BY s.device_id""",
        params,
    )
    by_bin: dict[str, tuple[int, list[tuple[int, int]]]] = {}
    for device, first, last, floor in rows:
        by_bin.setdefault(device, (int(floor), []))[1].append((int(first), int(last)))
    missing = {}
    for device, (floor, ranges) in by_bin.items():
        top = max(last for _, last in ranges)
        # at least 0: a kept result may carry a number below the floor (a bin's clock was off)
        missing[device] = max(0, top - floor - seq_ranges.covered_above(ranges, floor))
    return {device: n for device, n in missing.items() if n or complete_too}


def status_history(db: Database, device_id: str, window: TimeWindow, limit: int = 200) -> list[StatusEvent]:
    """A bin's status changes in the window and the status it had when the window began,
    newest first. A retained status delivered again (an aggregator restart) repeats the last
    one and is folded into it."""
    before = db.query(
        """SELECT at_ms, status FROM status_events WHERE device_id = ? AND at_ms < ?
           ORDER BY at_ms DESC LIMIT 1""",
        (device_id, window.since_ms),
    )
    rows = db.query(
        """SELECT at_ms, status FROM status_events
           WHERE device_id = ? AND at_ms >= ? AND at_ms < ? ORDER BY at_ms""",
        (device_id, window.since_ms, window.until_ms),
    )
    changes: list[StatusEvent] = []
    for at_ms, status in [*before, *rows]:
        if not changes or changes[-1].status != status:
            changes.append(StatusEvent(iso(int(at_ms)), status))
    return changes[::-1][:limit]


def recent_results(db: Database, device_id: str, limit: int = 20) -> list[RecentResult]:
    """A bin's newest results, for spot checks on its page."""
    rows = db.query(
        """SELECT seen_ms, label, confidence, uncertain, inference_ms, model_version
           FROM results WHERE device_id = ? ORDER BY seen_ms DESC LIMIT ?""",
        (device_id, int(limit)),
    )
    return [
        RecentResult(iso(int(r[0])), r[1], round(float(r[2]), 4), bool(r[3]), float(r[4]), r[5]) for r in rows
    ]


def rejected_count(db: Database, window: TimeWindow) -> int:
    rows = db.query(
        "SELECT COUNT(*) FROM rejected WHERE received_ms >= ? AND received_ms < ?",
        (window.since_ms, window.until_ms),
    )
    return int(rows[0][0])


def fleet_totals(summaries: list[BinSummary]) -> dict[str, Any]:
    items = sum(s.items for s in summaries)
    plastic = sum(s.plastic for s in summaries)
    return {
        "bins": len(summaries),
        "items": items,
        "plastic": plastic,
        "plastic_share": _share(plastic, items),
    }


def as_dicts(rows: list[Any]) -> list[dict[str, Any]]:
    """Rows (dataclasses built here, never shared) as JSON-ready dicts; a shallow copy, because
    ``asdict``'s deep copy was most of a month's report time."""
    return [dict(row.__dict__) for row in rows]

"""Each bin's health as the fleet sees it: why and since when its camera is down (from its
status) and its latest stats (inference p95, queue depth and drops, CPU, memory), with the two
judgements the dashboard lists under "Needs attention" and the alert rules mirror: inference is
slow, the offline queue is growing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ecolens.fleet.storage.binstats import BinStats, read_stats
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import iso

SLOW_INFERENCE_MS = 250.0  # p95 above this: a bin keeps up with a few items a minute, but it is
# 5-10x the reference model on a Raspberry Pi 4 (thermal throttling, another process, wrong model)
QUEUE_ATTENTION = 20  # queued results; a connected bin's queue is ~0
STATS_FRESH_S = 900  # older stats say nothing about now (a daemon sends them every minute)


def judge(stats: BinStats, now_ms: int) -> dict[str, bool]:
    """``slow_inference`` and ``queue_growing``, only from fresh stats."""
    fresh = now_ms - stats.received_ms <= STATS_FRESH_S * 1000
    depth, before = stats.queue_depth, stats.previous_queue_depth
    return {
        "slow_inference": bool(
            fresh and stats.inference_ms_p95 is not None and stats.inference_ms_p95 > SLOW_INFERENCE_MS
        ),
        "queue_growing": bool(
            fresh and depth is not None and depth >= QUEUE_ATTENTION and (before is None or depth > before)
        ),
    }


def stats_dict(stats: BinStats) -> dict[str, Any]:
    figures = asdict(stats)
    figures.pop("device_id")
    figures["at"] = iso(figures.pop("received_ms"))
    return figures


def camera_details(db: Database, device_id: str | None = None) -> dict[str, tuple[str | None, int | None]]:
    """device_id -> (camera error, camera since ms) as the bins' statuses said."""
    where, params = ("WHERE device_id = ?", (device_id,)) if device_id is not None else ("", ())
    rows = db.query(f"SELECT device_id, camera_error, camera_since_ms FROM devices {where}", params)
    return {row[0]: (row[1], row[2]) for row in rows}


def add_health(db: Database, status: list[dict[str, Any]], now_ms: int, device_id: str | None = None) -> None:
    """Adds ``camera_error``, ``camera_since``, ``stats`` (None without any), ``slow_inference``
    and ``queue_growing`` to each bin's status entry; offline bins are judged by nothing stale."""
    stats = read_stats(db, device_id)
    cameras = camera_details(db, device_id)
    for entry in status:
        error, since_ms = cameras.get(entry["device_id"], (None, None))
        down = entry.get("camera") == "down"
        entry["camera_error"] = error if down else None
        entry["camera_since"] = iso(since_ms) if entry.get("camera") else None
        latest = stats.get(entry["device_id"])
        entry["stats"] = stats_dict(latest) if latest else None
        verdict = judge(latest, now_ms) if latest and entry["state"] != "offline" else {}
        entry["slow_inference"] = verdict.get("slow_inference", False)
        entry["queue_growing"] = verdict.get("queue_growing", False)

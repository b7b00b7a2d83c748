"""Each bin's health as the fleet sees it: why and since when its camera is down (from its
status) and its latest stats (inference p95, queue depth and drops, CPU, memory), with the two
judgements the dashboard lists under "Needs attention" and the alert rules mirror: inference is
slow, the offline queue is growing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ecolens.fleet.attention import DEFAULT_ATTENTION, Attention
from ecolens.fleet.storage.binstats import BinStats, read_stats
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import iso


def judge(stats: BinStats, now_ms: int, attention: Attention = DEFAULT_ATTENTION) -> dict[str, bool]:
    """``slow_inference`` and ``queue_growing``, only from fresh stats."""
    fresh = now_ms - stats.received_ms <= attention.stats_fresh_s * 1000
    depth, before = stats.queue_depth, stats.previous_queue_depth
    p95 = stats.inference_ms_p95
    deep = depth is not None and depth >= attention.queue_depth
    return {
        "slow_inference": bool(fresh and p95 is not None and p95 > attention.slow_inference_ms),
        "queue_growing": bool(fresh and deep and (before is None or depth > before)),
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


def add_health(
    db: Database,
    status: list[dict[str, Any]],
    now_ms: int,
    device_id: str | None = None,
    attention: Attention = DEFAULT_ATTENTION,
) -> None:
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
        verdict = judge(latest, now_ms, attention) if latest and entry["state"] != "offline" else {}
        entry["slow_inference"] = verdict.get("slow_inference", False)
        entry["queue_growing"] = verdict.get("queue_growing", False)

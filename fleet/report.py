"""One report object for the CLI, the HTTP API and the dashboard, so they always agree."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from ecolens.fleet import queries
from ecolens.fleet.attention import DEFAULT_ATTENTION, Attention
from ecolens.fleet.bin_health import add_health
from ecolens.fleet.storage.database import Database
from ecolens.fleet.timewindow import BUCKETS_MS, TimeWindow

VIEWS = ("bins", "series", "status")


def build_report(
    db: Database,
    window: TimeWindow,
    bucket: str,
    plastic_label: str,
    stale_after_s: int,
    views: tuple[str, ...] = VIEWS,
    device_id: str | None = None,
    attention: Attention = DEFAULT_ATTENTION,
) -> dict[str, Any]:
    """JSON-ready: window, fleet totals, the requested views, and the ``attention`` thresholds
    the statuses were judged by (the dashboard marks with the same)."""
    report: dict[str, Any] = {"window": window.as_dict(), "plastic_label": plastic_label}
    report["attention"] = asdict(attention)
    summaries = queries.bin_summaries(db, window, plastic_label, device_id)
    report["totals"] = queries.fleet_totals(summaries)
    report["totals"]["rejected_messages"] = queries.rejected_count(db, window)
    # Since each bin started numbering, whatever the window: a lost result is never silent.
    report["missing"] = queries.missing_results(db, device_id)
    report["totals"]["missing_results"] = sum(report["missing"].values())
    if "bins" in views:
        report["bins"] = queries.as_dicts(summaries)
    if "series" in views:
        report["bucket"] = bucket
        report["series"] = queries.series_dicts(db, window, BUCKETS_MS[bucket], plastic_label, device_id)
    if "status" in views:
        now_ms = int(time.time() * 1000)
        statuses = queries.bin_statuses(db, now_ms, stale_after_s)
        if device_id is not None:
            statuses = [s for s in statuses if s.device_id == device_id]
        report["status"] = queries.as_dicts(statuses)
        add_health(db, report["status"], now_ms, device_id, attention)
        report["totals"]["slow_inference"] = sum(s["slow_inference"] for s in report["status"])
        report["totals"]["queue_growing"] = sum(s["queue_growing"] for s in report["status"])
        report["totals"]["offline"] = sum(s.state == "offline" for s in statuses)
        report["totals"]["stale"] = sum(s.state == "stale" for s in statuses)
        report["totals"]["camera_down"] = sum(s.camera == "down" and s.state != "offline" for s in statuses)
    return report


def build_bin_page(
    db: Database,
    window: TimeWindow,
    bucket: str,
    plastic_label: str,
    stale_after_s: int,
    device_id: str,
    attention: Attention = DEFAULT_ATTENTION,
) -> dict[str, Any] | None:
    """One bin: the report restricted to it, plus its status history and newest results.
    None when the bin was never heard from."""
    report = build_report(db, window, bucket, plastic_label, stale_after_s, VIEWS, device_id, attention)
    if not report["status"] and not report["bins"]:
        return None
    report["device_id"] = device_id
    report["status_history"] = queries.as_dicts(queries.status_history(db, device_id, window))
    report["recent"] = queries.as_dicts(queries.recent_results(db, device_id))
    return report

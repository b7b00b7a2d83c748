"""The thresholds that put a bin under "Needs attention"."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attention:
    """When a bin is listed under "Needs attention" ([report] settings; the report hands them
    to the dashboard, so the page and the API judge alike). The defaults are what a Raspberry
    Pi 4 running the reference model looks like when something is wrong."""

    slow_inference_ms: float = 250.0  # p95 5-10x the reference model on a Pi 4 (throttling, ...)
    queue_depth: int = 20  # queued results; a connected bin's queue is ~0
    uncertain_share: float = 0.15  # share of results below the confidence threshold
    stats_fresh_s: int = 900  # older stats say nothing about now (a daemon sends them every minute)


DEFAULT_ATTENTION = Attention()

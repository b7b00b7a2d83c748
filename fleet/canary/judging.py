"""When a staged rollout is decided: the judgement (fleet/rollout/statistics.py) applied to the
per-bin figures of the rollout's window."""

from __future__ import annotations

from ecolens.fleet.canary.records import StagedRollout, bin_figures
from ecolens.fleet.rollout.statistics import WORSE, CanaryVerdict, judge
from ecolens.fleet.storage.database import Database


def judge_rollout(database: Database, rollout: StagedRollout, now_ms: int) -> CanaryVerdict | None:
    """The verdict, or None while it is too early: a decisive "worse" is acted on at once;
    anything else waits for the end of the window."""
    canaries, rest = bin_figures(database, rollout, min(now_ms, rollout.ends_ms))
    over = now_ms >= rollout.ends_ms
    verdict = judge(canaries, rest, rollout.thresholds, over)
    if over or (verdict.outcome == WORSE and verdict.decisive):
        return verdict
    return None

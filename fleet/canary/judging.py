"""When a staged rollout is decided, and which canaries a rollback goes to: the judgement
(fleet/rollout/statistics.py) applied to the figures of the rollout's window."""

from __future__ import annotations

from typing import Any

from ecolens.fleet.canary.records import StagedRollout, group_figures
from ecolens.fleet.rollout.statistics import CanaryVerdict, judge
from ecolens.fleet.storage.database import Database


def rollback_targets(rollout: StagedRollout, states: dict[str, dict[str, Any]]) -> list[str]:
    """Canaries that run the new model and kept a previous one: a canary that refused the
    model must not be sent back to an even older one."""
    return [
        device
        for device in rollout.canaries
        if ((states.get(device) or {}).get("running") or {}).get("sha256") == rollout.sha256
        and (states.get(device) or {}).get("previous")
    ]


def judge_rollout(database: Database, rollout: StagedRollout, now_ms: int) -> CanaryVerdict | None:
    """The verdict, or None while it is too early: the canary is judged worse as soon as both
    groups have enough results (or results plus errors) and it differs; healthy (or worse:
    silent, too few results) only once the window is over."""
    canary, rest = group_figures(database, rollout, min(now_ms, rollout.ends_ms))
    over = now_ms >= rollout.ends_ms
    verdict = judge(
        canary,
        rest,
        min_results=rollout.min_results,
        max_share_delta=rollout.max_share_delta,
        max_uncertain_delta=rollout.max_uncertain_delta,
        max_error_delta=rollout.max_error_delta,
        silent_canaries=sorted(set(rollout.canaries) - canary.devices) if over else [],
    )
    if over or (verdict.conclusive and not verdict.healthy):
        return verdict
    return None

"""Staged rollouts as the fleet database keeps them: recording one (`ecolens rollout --canary`),
loading, printing, recording a verdict exactly once, and the figures of a rollout's window
(the canaries' and the rest's results and offline events)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ecolens.core.wire import OFFLINE
from ecolens.fleet.rollout.statistics import BinFigures, Thresholds
from ecolens.fleet.storage.database import Database

WATCHING = "watching"
HEALTHY = "healthy"
ROLLED_BACK = "rolled_back"
WORSE_NOT_ROLLED_BACK = "worse"  # judged worse, but no key, or one bin could decide it: an operator acts
INCONCLUSIVE = "inconclusive"  # not worse, but too few canaries or one bin could decide it: not promoted
STATES = (WATCHING, HEALTHY, ROLLED_BACK, WORSE_NOT_ROLLED_BACK, INCONCLUSIVE)


@dataclass(frozen=True)
class StagedRollout:
    """One canary rollout as recorded by `ecolens rollout --canary`."""

    rollout_id: str
    sha256: str
    name: str
    version: str
    canaries: tuple[str, ...]
    started_ms: int
    window_s: float
    min_results: int = 10
    max_share_delta: float = 0.25
    max_uncertain_delta: float = 0.15
    max_error_delta: float = 0.1
    min_canaries: int = Thresholds.min_canaries
    state: str = WATCHING
    decided_ms: int | None = None
    verdict: dict[str, Any] | None = None

    @property
    def ends_ms(self) -> int:
        return self.started_ms + int(self.window_s * 1000)

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(
            self.min_results,
            self.max_share_delta,
            self.max_uncertain_delta,
            self.max_error_delta,
            self.min_canaries,
        )


COLUMNS = (
    "rollout_id, model_sha256, model_name, model_version, canaries, started_ms, window_s, "
    "min_results, max_share_delta, max_uncertain_delta, state, decided_ms, verdict, max_error_delta, "
    "min_canaries"
)


def record_rollout(database: Database, rollout: StagedRollout) -> None:
    """What the aggregator will supervise (written by the rollout command)."""
    with database.transaction():
        database.execute(
            f"INSERT INTO rollouts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rollout.rollout_id,
                rollout.sha256,
                rollout.name,
                rollout.version,
                ",".join(rollout.canaries),
                rollout.started_ms,
                rollout.window_s,
                rollout.min_results,
                rollout.max_share_delta,
                rollout.max_uncertain_delta,
                rollout.state,
                None,
                None,
                rollout.max_error_delta,
                rollout.min_canaries,
            ),
        )


def _from_row(row: tuple[Any, ...]) -> StagedRollout:
    return StagedRollout(
        rollout_id=row[0],
        sha256=row[1],
        name=row[2],
        version=row[3],
        canaries=tuple(d for d in str(row[4]).split(",") if d),
        started_ms=int(row[5]),
        window_s=float(row[6]),
        min_results=int(row[7]),
        max_share_delta=float(row[8]),
        max_uncertain_delta=float(row[9]),
        state=row[10],
        decided_ms=None if row[11] is None else int(row[11]),
        verdict=None if row[12] is None else json.loads(row[12]),
        # NULL: recorded before errors were compared; they are judged with the default
        max_error_delta=StagedRollout.max_error_delta if row[13] is None else float(row[13]),
        min_canaries=StagedRollout.min_canaries if row[14] is None else int(row[14]),
    )


def load_rollouts(database: Database, state: str | None = None, limit: int = 50) -> list[StagedRollout]:
    """Newest first; only those in ``state`` when given."""
    where, params = ("WHERE state = ?", (state,)) if state else ("", ())
    rows = database.query(
        f"SELECT {COLUMNS} FROM rollouts {where} ORDER BY started_ms DESC LIMIT {int(limit)}", params
    )
    return [_from_row(row) for row in rows]


def load_rollout(database: Database, rollout_id: str) -> StagedRollout | None:
    rows = database.query(f"SELECT {COLUMNS} FROM rollouts WHERE rollout_id = ?", (rollout_id,))
    return _from_row(rows[0]) if rows else None


def format_rollouts(rollouts: list[StagedRollout]) -> str:
    """`ecolens rollout status`: the recorded rollouts (newest first) and what the aggregator
    decided, so an operator sees which canary was rolled back and why without SQL."""
    from ecolens.fleet.timewindow import iso

    if not rollouts:
        return "no rollouts recorded"
    header = ["rollout", "version", "sha256", "canaries", "state", "decided", "verdict"]
    rows = [header]
    for rollout in rollouts:
        verdict = "-"
        if rollout.verdict is not None:
            verdict = "; ".join(rollout.verdict.get("reasons") or []) or "within the thresholds"
        rows.append(
            [
                rollout.rollout_id,
                rollout.version,
                rollout.sha256[:12],
                ",".join(rollout.canaries),
                rollout.state,
                iso(rollout.decided_ms) or "-",
                verdict,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def decide(database: Database, rollout_id: str, state: str, verdict: dict[str, Any], now_ms: int) -> bool:
    """Record the verdict once: False when another aggregator (or an earlier tick) already did,
    so that only one of them signs a rollback."""
    with database.transaction():
        changed = database.execute(
            "UPDATE rollouts SET state = ?, decided_ms = ?, verdict = ? WHERE rollout_id = ? AND state = ?",
            (state, now_ms, json.dumps(verdict), rollout_id, WATCHING),
        )
    return changed == 1


def reopen(database: Database, rollout_id: str, state: str) -> None:
    """Undo a verdict whose action failed (the broker was away), so it is taken again."""
    with database.transaction():
        database.execute(
            "UPDATE rollouts SET state = ?, decided_ms = NULL, verdict = NULL "
            "WHERE rollout_id = ? AND state = ?",
            (WATCHING, rollout_id, state),
        )


def bin_figures(
    database: Database, rollout: StagedRollout, until_ms: int
) -> tuple[dict[str, BinFigures], dict[str, BinFigures]]:
    """(canaries, rest), per bin, seen since the rollout started: each canary's results stamped
    with the new model (a canary that never ran it sends none: no evidence), every other bin's
    results, and each bin's errors: the times it went offline. That is the one error bins report
    on a topic the aggregator stores: the daemon says ``offline`` when it stops, also after a
    crash (a model whose inference fails), and the broker sends its last will when it is killed
    or loses the network. Every canary is listed, also a silent one."""
    canaries = {device: BinFigures() for device in rollout.canaries}
    rest: dict[str, BinFigures] = {}
    rows = database.query(
        "SELECT device_id, model_sha256, label, uncertain, COUNT(*) FROM results "
        "WHERE seen_ms >= ? AND seen_ms <= ? GROUP BY device_id, model_sha256, label, uncertain",
        (rollout.started_ms, until_ms),
    )
    for device, sha256, label, uncertain, count in rows:
        if device in canaries:
            if sha256 == rollout.sha256:
                canaries[device].add_many(label, bool(uncertain), int(count))
        else:
            rest.setdefault(device, BinFigures()).add_many(label, bool(uncertain), int(count))
    offline = database.query(
        "SELECT device_id, COUNT(*) FROM status_events "
        "WHERE status = ? AND at_ms >= ? AND at_ms <= ? GROUP BY device_id",
        (OFFLINE, rollout.started_ms, until_ms),
    )
    for device, count in offline:
        figures = canaries[device] if device in canaries else rest.setdefault(device, BinFigures())
        figures.errors += int(count)
    return canaries, rest

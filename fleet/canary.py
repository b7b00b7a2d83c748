"""The aggregator supervises staged rollouts: ``ecolens rollout --canary`` records one in the
fleet database; every few seconds the aggregator compares the canary bins' stored results from
the new model with every other bin's over the rollout's window, and signs a rollback of the
canaries itself when they are worse. No command has to stay running for a bad model to go away.

Why from the database and not from live MQTT: the aggregator already stores every result (also
those queued on the broker while it was down, and those split between several aggregators of a
shared subscription), so the judgement sees all of them; and the decision is recorded where
`ecolens rollout --watch`, the health endpoint and /metrics can read it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection
from ecolens.fleet.storage.database import Database

log = logging.getLogger(__name__)

WATCHING = "watching"
HEALTHY = "healthy"
ROLLED_BACK = "rolled_back"
WORSE_NOT_ROLLED_BACK = "worse"  # judged worse, but no key (or no bin to roll back): an operator acts
STATES = (WATCHING, HEALTHY, ROLLED_BACK, WORSE_NOT_ROLLED_BACK)


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
    state: str = WATCHING
    decided_ms: int | None = None
    verdict: dict[str, Any] | None = None

    @property
    def ends_ms(self) -> int:
        return self.started_ms + int(self.window_s * 1000)


COLUMNS = (
    "rollout_id, model_sha256, model_name, model_version, canaries, started_ms, window_s, "
    "min_results, max_share_delta, max_uncertain_delta, state, decided_ms, verdict, max_error_delta"
)


def record_rollout(database: Database, rollout: StagedRollout) -> None:
    """What the aggregator will supervise (written by the rollout command)."""
    with database.transaction():
        database.execute(
            f"INSERT INTO rollouts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


def rollback_targets(rollout: StagedRollout, states: dict[str, dict[str, Any]]) -> list[str]:
    """Canaries that run the new model and kept a previous one: a canary that refused the
    model must not be sent back to an even older one."""
    return [
        device
        for device in rollout.canaries
        if ((states.get(device) or {}).get("running") or {}).get("sha256") == rollout.sha256
        and (states.get(device) or {}).get("previous")
    ]


def group_figures(database: Database, rollout: StagedRollout, until_ms: int) -> tuple[Any, Any]:
    """(canary, rest): the canaries' results from the new model, every other bin's results,
    seen since the rollout started, and each group's errors: the times its bins went offline in
    that time. That is the one error bins report on a topic the aggregator stores: the daemon
    says ``offline`` when it stops, also after a crash (a model whose inference fails), and the
    broker sends its last will when it is killed or loses the network."""
    from ecolens.fleet.rollout import GroupFigures

    canary, rest = GroupFigures(), GroupFigures()
    rows = database.query(
        "SELECT device_id, model_sha256, label, uncertain, COUNT(*) FROM results "
        "WHERE seen_ms >= ? AND seen_ms <= ? GROUP BY device_id, model_sha256, label, uncertain",
        (rollout.started_ms, until_ms),
    )
    canaries = set(rollout.canaries)
    for device, sha256, label, uncertain, count in rows:
        if device in canaries:
            if sha256 == rollout.sha256:
                canary.add_many(device, label, bool(uncertain), int(count))
        else:
            rest.add_many(device, label, bool(uncertain), int(count))
    offline = database.query(
        "SELECT device_id, COUNT(*) FROM status_events "
        "WHERE status = ? AND at_ms >= ? AND at_ms <= ? GROUP BY device_id",
        ("offline", rollout.started_ms, until_ms),
    )
    for device, count in offline:
        (canary if device in canaries else rest).errors += int(count)
    return canary, rest


def judge_rollout(database: Database, rollout: StagedRollout, now_ms: int) -> Any | None:
    """The verdict, or None while it is too early: the canary is judged worse as soon as both
    groups have enough results (or results plus errors) and it differs; healthy (or worse:
    silent, too few results) only once the window is over."""
    from ecolens.fleet.rollout import judge

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


def read_signing_key(path: Path) -> Any:
    """The rollout's private key for the aggregator's automatic rollbacks. Refused when others
    than its owner may read it: whoever reads it can sign any model for every bin."""
    from ecolens.core.rollout import load_private_key

    try:
        mode = os.stat(path).st_mode
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"rollout.key_file: cannot read {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"rollout.key_file: {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"chmod 600 it, owned by the aggregator's user"
        )
    return load_private_key(pem)


@dataclass
class CanaryStats:
    """What the supervisor did since start: /api/health and /metrics show it."""

    checks: int = 0
    watching: int = 0
    healthy: int = 0
    rolled_back: int = 0
    worse_not_rolled_back: int = 0
    errors: int = 0
    last_decision: dict[str, Any] | None = None
    signing_key: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class CanarySupervisor:
    """A thread: every ``interval_s`` judge each rollout still being watched, record the
    verdict, and sign a rollback of the canaries that run the new model when it is worse."""

    def __init__(
        self,
        database_factory: Callable[[], Database],
        broker: BrokerSection,
        prefix: str,
        private_key: Any | None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.database_factory = database_factory
        self.broker = broker
        self.prefix = prefix
        self.private_key = private_key
        self.interval_s = interval_s
        self.clock = clock
        self.stats = CanaryStats(signing_key=private_key is not None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CanarySupervisor:
        self._thread = threading.Thread(target=self._loop, name="fleet-canary", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        database: Database | None = None
        while not self._stop.wait(self.interval_s):
            try:
                database = database or self.database_factory()
                self.check(database)
            except Exception as exc:  # database or broker away: try again next tick
                self.stats.errors += 1
                log.error("canary check failed (%s); retrying in %.0f s", exc, self.interval_s)
                if database is not None:
                    with contextlib.suppress(Exception):
                        database.close()
                database = None
        if database is not None:
            database.close()

    def check(self, database: Database) -> None:
        """One pass over the rollouts being watched."""
        watching = load_rollouts(database, WATCHING)
        self.stats.checks += 1
        self.stats.watching = len(watching)
        now_ms = int(self.clock() * 1000)
        for rollout in watching:
            verdict = judge_rollout(database, rollout, now_ms)
            if verdict is not None:
                self._act(database, rollout, verdict, now_ms)

    def _act(self, database: Database, rollout: StagedRollout, verdict: Any, now_ms: int) -> None:
        record = {
            "healthy": verdict.healthy,
            "reasons": verdict.reasons,
            "canary": verdict.canary,
            "rest": verdict.rest,
        }
        canaries = ", ".join(rollout.canaries)
        described = f"rollout {rollout.rollout_id} ({rollout.name} {rollout.version} on {canaries})"
        if verdict.healthy:
            if decide(database, rollout.rollout_id, HEALTHY, record, now_ms):
                self.stats.healthy += 1
                self._remember(rollout, HEALTHY, record)
                log.info("canary healthy: %s; promote it with ecolens rollout --devices", described)
            return
        states: dict[str, dict[str, Any]] = {}
        targets: list[str] = []
        if self.private_key is not None:
            from ecolens.fleet.rollout import collect_states

            states = collect_states(self.broker, self.prefix)
            targets = rollback_targets(rollout, states)
        state = ROLLED_BACK if targets else WORSE_NOT_ROLLED_BACK
        record["rolled_back"] = targets
        if not decide(database, rollout.rollout_id, state, record, now_ms):
            return  # another aggregator decided first
        if targets:
            from ecolens.fleet.rollout import publish_rollback

            try:
                publish_rollback(self.broker, self.prefix, states, targets, self.private_key)
            except Exception:
                reopen(database, rollout.rollout_id, state)  # judged again next tick
                raise
            self.stats.rolled_back += 1
            log.warning(
                "canary worse than the rest, rolled back %s: %s", described, "; ".join(verdict.reasons)
            )
        else:
            self.stats.worse_not_rolled_back += 1
            why = "no rollout.key_file configured" if self.private_key is None else "no canary runs it"
            log.error(
                "canary worse than the rest, NOT rolled back (%s): %s: %s; "
                "run: ecolens rollout rollback --devices %s",
                why,
                described,
                "; ".join(verdict.reasons),
                ",".join(rollout.canaries),
            )
        self._remember(rollout, state, record)

    def _remember(self, rollout: StagedRollout, state: str, record: dict[str, Any]) -> None:
        self.stats.last_decision = {"rollout_id": rollout.rollout_id, "state": state, **record}

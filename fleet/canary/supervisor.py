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
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ecolens.fleet.canary.judging import judge_rollout
from ecolens.fleet.canary.records import (
    HEALTHY,
    INCONCLUSIVE,
    ROLLED_BACK,
    WATCHING,
    WORSE_NOT_ROLLED_BACK,
    StagedRollout,
    decide,
    load_rollouts,
    reopen,
)
from ecolens.fleet.rollout.statistics import WORSE, CanaryVerdict
from ecolens.fleet.storage.database import Database

if TYPE_CHECKING:  # publish imports the MQTT client (paho) only when a rollback is sent
    from ecolens.fleet.rollout.publish import Opener

log = logging.getLogger("ecolens.fleet.canary")


@dataclass
class CanaryStats:
    """What the supervisor did since start: /api/health and /metrics show it."""

    checks: int = 0
    watching: int = 0
    healthy: int = 0
    rolled_back: int = 0
    worse_not_rolled_back: int = 0
    inconclusive: int = 0
    refreshed: int = 0  # manifests re-signed before they expired
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
        connect: Opener,
        prefix: str,
        private_key: Any | None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
        manifest_ttl_s: float = 86400.0,
    ) -> None:
        self.database_factory = database_factory
        self.connect = connect  # the aggregator's own connection (one per broker user)
        self.prefix = prefix
        self.private_key = private_key
        self.interval_s = interval_s
        self.clock = clock
        self.manifest_ttl_s = manifest_ttl_s
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
        if self.private_key is not None:
            from ecolens.fleet.rollout.current import refresh_manifests

            fresh = refresh_manifests(
                database, self.connect, self.prefix, self.private_key, self.manifest_ttl_s, now_ms
            )
            self.stats.refreshed += len(fresh)
            if fresh:
                log.info("re-signed %d current manifests before they expire", len(fresh))

    def _act(self, database: Database, rollout: StagedRollout, verdict: CanaryVerdict, now_ms: int) -> None:
        record = {
            "healthy": verdict.healthy,
            "outcome": verdict.outcome,
            "decisive": verdict.decisive,
            "reasons": verdict.reasons,
            "canary": verdict.canary,
            "rest": verdict.rest,
        }
        canaries = ", ".join(rollout.canaries)
        described = f"rollout {rollout.rollout_id} ({rollout.name} {rollout.version} on {canaries})"
        if verdict.outcome != WORSE:
            state = HEALTHY if verdict.promotable else INCONCLUSIVE
            if decide(database, rollout.rollout_id, state, record, now_ms):
                self._remember(rollout, state, record)
                if state == HEALTHY:
                    self.stats.healthy += 1
                    log.info("canary healthy: %s; promote it with ecolens rollout --devices", described)
                else:
                    self.stats.inconclusive += 1
                    log.warning(
                        "canary inconclusive, not promoted: %s: %s", described, "; ".join(verdict.reasons)
                    )
            return
        # Every canary, online or not: the signed rollback supersedes its retained install.
        targets = list(rollout.canaries) if self.private_key is not None and verdict.decisive else []
        state = ROLLED_BACK if targets else WORSE_NOT_ROLLED_BACK
        record["rolled_back"] = targets
        if not decide(database, rollout.rollout_id, state, record, now_ms):
            return  # another aggregator decided first
        if targets:
            try:
                self._roll_back(database, rollout, targets, now_ms)
            except Exception:
                reopen(database, rollout.rollout_id, state)  # judged again next tick
                raise
            self.stats.rolled_back += 1
            log.warning(
                "canary worse than the rest, rolled back %s: %s", described, "; ".join(verdict.reasons)
            )
        else:
            self.stats.worse_not_rolled_back += 1
            why = "no rollout.key_file configured" if self.private_key is None else "one bin could decide it"
            log.error(
                "canary worse than the rest, NOT rolled back (%s): %s: %s; "
                "run: ecolens rollout rollback --devices %s",
                why,
                described,
                "; ".join(verdict.reasons),
                ",".join(rollout.canaries),
            )
        self._remember(rollout, state, record)

    def _roll_back(self, database: Database, rollout: StagedRollout, targets: list[str], now_ms: int) -> None:
        """Revoke the rollout's model on every canary with a signed, retained rollback."""
        from ecolens.fleet.rollout.current import revoke
        from ecolens.fleet.rollout.publish import ModelRef, publish_rollback

        revoke(database, rollout.sha256, rollout.rollout_id, now_ms)
        model = ModelRef(rollout.sha256, rollout.name, rollout.version)
        publish_rollback(
            self.connect,
            self.prefix,
            {d: model for d in targets},
            self.private_key,
            self.manifest_ttl_s,
            database,
        )

    def _remember(self, rollout: StagedRollout, state: str, record: dict[str, Any]) -> None:
        self.stats.last_decision = {"rollout_id": rollout.rollout_id, "state": state, **record}

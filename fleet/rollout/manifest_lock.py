"""One writer of the retained manifests at a time: `ecolens rollout` (installs, rollbacks) and the
aggregator (canary rollbacks, re-signs before expiry) publish a bin's manifest and record it as
its current one under one database lock. Without it, a re-sign that read a bin's manifest just
before a push could publish it again just after, and the broker would keep the older serial for
every bin that was offline (they would install it, then the newer one only at the next re-sign)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ecolens.core.rollout import Manifest
from ecolens.fleet.storage.database import Database


@contextmanager
def manifests_locked(database: Database | None) -> Iterator[Database | None]:
    """A transaction that holds the manifests' write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
    a table lock other writers of it wait for); nothing without a database."""
    if database is None:
        yield None
        return
    with database.transaction():
        if database.kind == "postgresql":
            database.execute("LOCK TABLE manifests IN SHARE ROW EXCLUSIVE MODE")
        yield database


def write_current(tx: Database, manifests: list[Manifest]) -> None:
    """Inside the caller's transaction: each manifest is now its bin's current one."""
    for manifest in manifests:
        tx.execute("DELETE FROM manifests WHERE device_id = ?", (manifest.device_id,))
        tx.execute(
            "INSERT INTO manifests (device_id, serial, action, model_sha256, expires_ms, body) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                manifest.device_id,
                manifest.serial,
                manifest.action,
                manifest.sha256,
                manifest.expires_ms,
                manifest.to_bytes().decode(),
            ),
        )

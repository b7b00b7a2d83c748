"""The signed manifest each bin should hold now, as the fleet database records it, and the models
rolled back. The broker is not trusted with this (a bin may overwrite its own retained
manifest, any broker user may replay one): the aggregator re-signs what the database says is
current before it expires (TUF's timestamp role), so an older manifest a bin is handed instead
expires, and a revoked model is never pushed again."""

from __future__ import annotations

import dataclasses
from typing import Any

from ecolens.core.rollout import Manifest
from ecolens.core.wire import manifest_topic
from ecolens.fleet.rollout.manifest_lock import manifests_locked, write_current
from ecolens.fleet.rollout.publish import ModelRef, Opener, expiry_ms
from ecolens.fleet.storage.database import Database


def current_manifest(database: Database, device: str) -> Manifest | None:
    rows = database.query("SELECT body FROM manifests WHERE device_id = ?", (device,))
    return Manifest.from_bytes(str(rows[0][0]).encode()) if rows else None


def revoke(database: Database, sha256: str, rollout_id: str, now_ms: int) -> None:
    """The model is never pushed again (`ecolens rollout` refuses it)."""
    with database.transaction():
        if not database.query("SELECT 1 FROM revoked_models WHERE model_sha256 = ?", (sha256,)):
            database.execute(
                "INSERT INTO revoked_models (model_sha256, rollout_id, at_ms) VALUES (?, ?, ?)",
                (sha256, rollout_id, now_ms),
            )


def revoked_by(database: Database, sha256: str) -> str | None:
    """The rollout that revoked this model, or None."""
    rows = database.query("SELECT rollout_id FROM revoked_models WHERE model_sha256 = ?", (sha256,))
    return str(rows[0][0]) if rows else None


def rollback_target(
    database: Database | None, device: str, state: dict[str, Any] | None
) -> tuple[ModelRef | None, str]:
    """The model a rollback of ``device`` revokes, or None and why nothing is sent: the model
    its current install manifest names (whether the bin is online or not), else the model it
    reports running when it reports a previous one to return to."""
    current = current_manifest(database, device) if database is not None else None
    if current is not None and current.action == "rollback":
        return None, f"model {current.sha256[:12]} ({current.version}) is already rolled back"
    if current is not None:
        return ModelRef(current.sha256, current.name, current.version), ""
    running = (state or {}).get("running") or {}
    previous = (state or {}).get("previous") or {}
    if not previous or previous.get("sha256") == running.get("sha256") or not running.get("sha256"):
        return None, "reports no previous model to roll back to"
    return ModelRef(str(running["sha256"]), str(running.get("name", "")), str(running.get("version", ""))), ""


def refresh_manifests(
    database: Database, connect: Opener, prefix: str, private_key: Any, ttl_s: float, now_ms: int
) -> list[Manifest]:
    """Re-sign and re-publish the current manifests past half their lifetime: the same serial
    (a bin that applied it does nothing), a later expiry. Returns those re-signed. Read, published
    and recorded under the manifests' lock, so a push meanwhile is never published over."""
    from ecolens.core.rollout import sign

    due = "SELECT body FROM manifests WHERE expires_ms < ?"
    horizon = (now_ms + int(ttl_s * 1000) // 2,)
    if not database.query(due, horizon):  # the usual case: no lock taken
        return []
    with manifests_locked(database) as tx:
        assert tx is not None
        fresh = [
            dataclasses.replace(Manifest.from_bytes(str(row[0]).encode()), expires_ms=expiry_ms(ttl_s))
            for row in tx.query(due, horizon)
        ]
        connection = connect("refresh")
        try:
            for manifest in fresh:
                connection.publish(manifest_topic(prefix, manifest.device_id), sign(manifest, private_key))
        finally:
            connection.close()
        write_current(tx, fresh)
    return fresh

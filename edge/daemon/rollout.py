"""The bin's side of a signed rollout: verify the manifest, fetch the chunks, check the hash,
load the model (a model that does not load is refused and the running one stays), swap it in,
keep the previous one for rollback, and report the running model on its state topic.

It works on the daemon's one MQTT connection (mqtt_link.SharedLink: the shipped broker binds a
client id to its user, so a bin has exactly one connection), and in a worker thread, so
verification and loading never block the network: the link only hands messages over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecolens.core.classifier import Classifier, file_sha256
from ecolens.core.contract import utc_timestamp
from ecolens.core.errors import EcoLensError
from ecolens.core.mqtt.client import Message
from ecolens.core.rollout import Manifest, RolloutError, load_public_key, verify, version_key
from ecolens.core.wire import chunk_filter, chunk_index, manifest_topic, state_topic
from ecolens.edge.daemon.config.rollout import RolloutSection
from ecolens.edge.daemon.mqtt_link import SharedLink

log = logging.getLogger("ecolens.daemon.rollout")
STATE_FILE = "rollout-state.json"
MAX_REVOKED = 64  # rolled-back models a bin remembers (never installed again)


def chunks_cover(manifest: Manifest) -> bool:
    """The chunk count and size make exactly the model's size (the last chunk may be shorter)."""
    if manifest.chunk_bytes <= 0 or manifest.size <= 0:
        return False
    return manifest.chunks == -(-manifest.size // manifest.chunk_bytes)


def chunk_length(manifest: Manifest, index: int) -> int:
    """How long chunk ``index`` must be: every chunk is full but the last."""
    return min(manifest.chunk_bytes, manifest.size - index * manifest.chunk_bytes)


class ModelUpdater:
    """Receives signed manifests for one device and installs the models they name."""

    def __init__(
        self,
        settings: RolloutSection,
        prefix: str,
        device_id: str,
        folder: Path,
        current: Callable[[], Classifier],
        load: Callable[[Path], Classifier],
        install: Callable[[Classifier], None],
    ) -> None:
        self.settings = settings
        self.public_key = load_public_key(settings.public_key or "")
        self.prefix = prefix
        self.device_id = device_id
        self.folder = folder
        self.current = current
        self.load = load
        self.install = install
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EcoLensError(f"rollout.dir {folder} is not usable: {exc.strerror or exc}") from exc
        self.state = self._read_state()
        self.jobs: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.pending: Manifest | None = None
        self.chunks: dict[int, bytes] = {}
        self.link: SharedLink | None = None
        self._stop = threading.Event()

    # --- persistent state: last serial, active and previous model --------------------------------
    def _read_state(self) -> dict[str, Any]:
        try:
            return json.loads((self.folder / STATE_FILE).read_text())
        except (OSError, ValueError):
            return {"serial": 0, "active": None, "previous": None, "last_event": None, "revoked": []}

    def _write_state(self) -> None:
        tmp = self.folder / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.folder / STATE_FILE)

    def active_path(self) -> Path | None:
        """The model a rollout installed, if its file is still intact (used at start-up)."""
        active = self.state.get("active")
        if not active:
            return None
        path = Path(active["path"])
        if path.is_file() and file_sha256(path) == active["sha256"]:
            return path
        log.error("installed model %s is missing or damaged; using the configured model", path)
        return None

    # --- MQTT --------------------------------------------------------------------------------------
    def start(self, link: SharedLink) -> None:
        """On the daemon's connection: subscriptions (the manifest, and the chunks of a model
        being fetched) are made again at every reconnect; each connection reports the running
        model. Messages are only handed to the worker."""
        self.link = link
        link.on_connected(lambda: self.jobs.put(("report", None)))
        link.route(manifest_topic(self.prefix, self.device_id), self._hand_over)
        link.route(chunk_filter(self.prefix, "+"), self._hand_over)
        link.subscribe(manifest_topic(self.prefix, self.device_id), qos=1)
        threading.Thread(target=self._work, name="rollout", daemon=True).start()

    def _hand_over(self, message: Message) -> None:
        self.jobs.put(("message", message))

    def stop(self) -> None:
        self._stop.set()
        self.jobs.put(("stop", None))

    # --- the worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            kind, message = self.jobs.get()
            try:
                if kind == "report":
                    self.report()
                elif kind == "message":
                    self._handle(message.topic, message.payload)
            except Exception:  # a bad message must never stop the updater
                log.exception("rollout message on %s failed", getattr(message, "topic", "?"))

    def _link(self) -> SharedLink:
        assert self.link is not None, "start() first"
        return self.link

    def _handle(self, topic: str, payload: bytes) -> None:
        if topic == manifest_topic(self.prefix, self.device_id):
            if payload:
                self._on_manifest(payload)
            return
        pending = self.pending
        index = None if pending is None else chunk_index(self.prefix, pending.sha256, topic)
        if pending is None or index is None or not 0 <= index < pending.chunks:
            return
        expected = chunk_length(pending, index)
        if len(payload) != expected:  # junk on the topic: never buffer more than the signed size
            log.warning(
                "chunk %d of model %s ignored: %d bytes where the signed manifest says %d",
                index,
                pending.sha256[:12],
                len(payload),
                expected,
            )
            return
        self.chunks[index] = bytes(payload)
        if len(self.chunks) == pending.chunks:
            self._link().unsubscribe(chunk_filter(self.prefix, pending.sha256))
            data = b"".join(self.chunks[i] for i in range(pending.chunks))
            self.pending, self.chunks = None, {}
            self._install_bytes(pending, data)

    def _on_manifest(self, payload: bytes) -> None:
        try:
            manifest = self.check(payload)
        except RolloutError as exc:
            self._event("refused", str(exc))
            return
        if manifest is None:
            return  # the manifest this bin already applied, seen again on reconnect or re-signed
        try:
            self.acceptable(manifest)
        except RolloutError as exc:
            self._event("refused", str(exc), manifest)  # its serial is kept: nothing older after it
            return
        if manifest.action == "rollback":
            self._roll_back(manifest)
            return
        existing = self.folder / f"{manifest.sha256}.tflite"
        if existing.is_file() and file_sha256(existing) == manifest.sha256:
            self._install_file(manifest, existing, manifest.sha256, manifest.version)
            return
        self._cancel_fetch()
        self.pending, self.chunks = manifest, {}
        log.info("fetching model %s (%d chunks)", manifest.sha256[:12], manifest.chunks)
        self._link().subscribe(chunk_filter(self.prefix, manifest.sha256), qos=1)

    def _cancel_fetch(self) -> None:
        if self.pending is not None:
            self._link().unsubscribe(chunk_filter(self.prefix, self.pending.sha256))
        self.pending, self.chunks = None, {}

    def check(self, payload: bytes) -> Manifest | None:
        """The manifest if it is signed, for this bin, newer than every one it saw and not
        expired; None if already seen (a reconnect, or the same manifest re-signed before it
        expired); else RolloutError."""
        manifest = verify(payload, self.public_key)
        if manifest.device_id != self.device_id:
            raise RolloutError(f"manifest is for {manifest.device_id!r}, not this bin")
        serial = int(self.state.get("serial", 0))
        if manifest.serial == serial:
            return None
        if manifest.serial < serial:
            raise RolloutError(f"replayed manifest (serial {manifest.serial} <= {serial})")
        manifest.check_fresh(int(time.time() * 1000), int(self.settings.max_clock_skew_s * 1000))
        return manifest

    def acceptable(self, manifest: Manifest) -> None:
        """RolloutError when this bin must not do what a fresh manifest asks."""
        if manifest.action == "rollback":
            return
        if manifest.sha256 in self.revoked():
            raise RolloutError(f"model {manifest.sha256[:12]} was rolled back on this bin (revoked)")
        if manifest.size > self.settings.max_model_mb * 1024 * 1024:
            raise RolloutError(f"model of {manifest.size} bytes is over max_model_mb")
        if not chunks_cover(manifest):
            raise RolloutError(
                f"manifest's {manifest.chunks} chunks of {manifest.chunk_bytes} bytes do not make "
                f"{manifest.size} bytes"
            )
        running = self.current().metadata.version
        if version_key(manifest.version) <= version_key(running):
            raise RolloutError(f"version {manifest.version} is not newer than the running {running}")

    def revoked(self) -> list[str]:
        return list(self.state.get("revoked") or [])

    def _roll_back(self, manifest: Manifest) -> None:
        """A rollback revokes the model it names: never installed here again, and left for the
        previous model when running. A bin that does not run it (offline during the rollout,
        or it refused it) only records the revocation; the manifest supersedes the retained
        install, so it never fetches the model either."""
        self.state["revoked"] = ([s for s in self.revoked() if s != manifest.sha256] + [manifest.sha256])[
            -MAX_REVOKED:
        ]
        if self.pending is not None and self.pending.sha256 == manifest.sha256:
            self._cancel_fetch()
        if self.current().sha256 != manifest.sha256:
            reason = f"model {manifest.sha256[:12]} ({manifest.version}) revoked; this bin does not run it"
            self._event("revoked", reason, manifest)
            return
        previous = self.state.get("previous") or {}
        path = Path(previous.get("path", ""))
        if (
            not previous
            or previous.get("sha256") in self.revoked()
            or not path.is_file()
            or file_sha256(path) != previous.get("sha256")
        ):
            self._event("refused", "no previous model to roll back to", manifest)
            return
        self._install_file(manifest, path, previous["sha256"], previous["version"])

    def _install_bytes(self, manifest: Manifest, data: bytes) -> None:
        if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
            self._event("refused", "downloaded model does not match the manifest's size and sha256", manifest)
            return
        path = self.folder / f"{manifest.sha256}.tflite"
        tmp = path.with_suffix(".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._install_file(manifest, path, manifest.sha256, manifest.version)

    def _install_file(self, manifest: Manifest, path: Path, sha256: str, version: str) -> None:
        """Load and swap in ``path`` (the manifest's model, or for a rollback the previous one);
        a rollback keeps no previous model, so a second one cannot return to the revoked one."""
        try:
            classifier = self.load(path)
        except EcoLensError as exc:
            self._event("refused", f"model does not load: {exc}", manifest)
            return
        if classifier.metadata.version != version:
            self._event("refused", "model metadata version differs from the manifest", manifest)
            return
        running = self.current()
        self.install(classifier)
        if manifest.action == "install":
            self.state["previous"] = {
                "path": str(running.path),
                "sha256": running.sha256,
                "version": running.metadata.version,
            }
        else:
            self.state["previous"] = None
        self.state["active"] = {"path": str(path), "sha256": sha256, "version": version}
        self._event("installed" if manifest.action == "install" else "rolled_back", None, manifest)
        self._prune(keep={sha256, *([self.state["previous"]["sha256"]] if self.state["previous"] else [])})

    def _prune(self, keep: set[str]) -> None:
        """Only the running and the previous model stay on disk."""
        for path in self.folder.glob("*.tflite"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)

    def _event(self, event: str, reason: str | None, manifest: Manifest | None = None) -> None:
        """Record, log (one line) and report what happened; a manifest's serial is kept even when
        it was refused for what it asks, so no older manifest is accepted after it."""
        if manifest is not None:
            self.state["serial"] = max(int(self.state.get("serial", 0)), manifest.serial)
        self.state["last_event"] = {
            "event": event,
            "reason": reason,
            "at": utc_timestamp(),
            "serial": manifest.serial if manifest else None,
            "rollout_id": manifest.rollout_id if manifest else None,
        }
        self._write_state()
        level = logging.WARNING if event == "refused" else logging.INFO
        log.log(
            level, "rollout %s%s", event, f": {reason}" if reason else "", extra={"event": f"rollout_{event}"}
        )
        self.report()

    def report(self) -> None:
        """The running model, retained, for `ecolens rollout status` and the fleet."""
        running = self.current()
        body = {
            "device_id": self.device_id,
            "running": dict(running.model_info),
            "previous": self.state.get("previous"),
            "serial": self.state.get("serial", 0),
            "last_event": self.state.get("last_event"),
        }
        if self.link is not None:
            self.link.publish(state_topic(self.prefix, self.device_id), json.dumps(body), qos=1, retain=True)

"""Samples the bins send for labelling: stored as JPEG files plus one SQLite table (bin, time,
model version, predicted label and confidence, human label), received from
``<prefix>/+/sample`` and exported as class folders for `ecolens adapt`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError, EcoLensError
from ecolens.core.mqtt import BrokerSection, make_client
from ecolens.fleet.payload import PayloadError, check_values, decode_payload, printable

log = logging.getLogger(__name__)

HUMAN_LABELS = ("plastic", "non_plastic", "skip")
SAMPLE_LEAF = "sample"
# a file name of its own: no path separator, and no leading dot (".." would leave the folder)
SAFE_ID = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,127}$")
MAX_SAMPLE_BYTES = 16 * 1024 * 1024  # a 320 px crop is ~30 kB; the daemon's largest (4096 px) fits
# Anyone who may publish on <prefix>/+/sample could otherwise fill the disk the results database
# shares: samples stop at a cap on their folder, and before the disk's last gigabyte.
DEFAULT_MAX_MB = 5000  # ~500,000 samples of the daemon's default 10 kB
MIN_FREE_BYTES = 1024**3
RECOUNT_INTERVAL_S = 60.0  # while full, look at the folder again at most this often (after a prune)
JPEG_MAGIC = b"\xff\xd8\xff"

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    event_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    predicted TEXT NOT NULL,
    confidence REAL NOT NULL,
    uncertain INTEGER NOT NULL,
    human_label TEXT,
    labelled_ms INTEGER,
    file TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_queue ON samples (human_label, uncertain DESC, confidence);
"""


class SampleRejected(EcoLensError):
    """A sample message that is not stored, with the reason."""


@dataclass(frozen=True)
class Sample:
    event_id: str
    device_id: str
    seen_at: str
    model_version: str
    model_sha256: str
    predicted: str
    confidence: float
    uncertain: bool
    human_label: str | None
    file: str

    def public(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data.pop("file")
        return data


def parse_sample(device_id: str, payload: bytes) -> tuple[dict[str, Any], bytes]:
    """(result, jpeg bytes) from a sample message; SampleRejected for anything else. The
    payload checks are the result path's (fleet/payload.py: UTF-8, finite numbers, no NUL or
    lone surrogate, bounded nesting), so nothing a broker client sends can stop the subscriber
    or make SQLite refuse the row; the ids become file names, so they must be plain names."""
    try:
        _, body = decode_payload(payload, MAX_SAMPLE_BYTES, max_string_chars=MAX_SAMPLE_BYTES)
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise PayloadError("not a JSON object with a result object")
        result = body["result"]
        check_values(result)  # the result's strings are bounded as a result message's are
        jpeg = base64.b64decode(body.get("jpeg", ""), validate=True)
    except (PayloadError, TypeError, binascii.Error) as exc:
        raise SampleRejected(f"malformed sample: {exc}") from None
    event_id, model, confidence = result.get("event_id"), result.get("model"), result.get("confidence")
    if not isinstance(event_id, str) or not SAFE_ID.match(event_id) or not SAFE_ID.match(device_id):
        raise SampleRejected("sample event or device id is missing or not a plain name")
    if not isinstance(result.get("label"), str) or not isinstance(model, dict):
        raise SampleRejected("sample result has no label or no model")
    if not all(isinstance(model.get(key), str) for key in ("version", "sha256")):
        raise SampleRejected("sample result's model has no version or sha256")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
        raise SampleRejected("sample confidence is not a number between 0 and 1")
    if not jpeg.startswith(JPEG_MAGIC):
        raise SampleRejected("sample image is not a JPEG")
    return result, jpeg


class SampleStore:
    """Files under ``folder/<device>/<event_id>.jpg`` and ``folder/samples.sqlite3``."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int = DEFAULT_MAX_MB * 1024**2,
        min_free_bytes: int = MIN_FREE_BYTES,
        recount_interval_s: float = RECOUNT_INTERVAL_S,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.recount_interval_s = recount_interval_s
        self._counted_at = time.monotonic()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                folder / "samples.sqlite3", check_same_thread=False, isolation_level=None
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self.used_bytes = self._count_bytes()
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"samples folder {folder} is not usable: {exc}") from exc
        self.lock = threading.Lock()

    def _count_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.folder.glob("*/*.jpg"))

    def _check_room(self, size: int) -> None:
        """SampleRejected when this image would pass the folder's cap or the disk's floor. While
        full, the folder is counted again now and then: `ecolens samples prune` (another process)
        makes room without a restart."""
        now = time.monotonic()
        if self.used_bytes + size > self.max_bytes and now - self._counted_at >= self.recount_interval_s:
            self.used_bytes, self._counted_at = self._count_bytes(), now
        if self.used_bytes + size > self.max_bytes:
            raise SampleRejected(
                f"samples folder holds {self.used_bytes / 1024**2:.0f} MB, its cap "
                f"(--samples-max-mb {self.max_bytes // 1024**2}): export and delete labelled samples, "
                "or raise the cap"
            )
        free = shutil.disk_usage(self.folder).free
        if free - size < self.min_free_bytes:
            raise SampleRejected(
                f"only {free / 1024**2:.0f} MB free on the samples folder's disk: samples stop "
                f"{self.min_free_bytes / 1024**2:.0f} MB before it is full (the results need it)"
            )

    def add(self, device_id: str, payload: bytes) -> bool:
        """Store one sample message; False when it was already stored (QoS 1 may repeat)."""
        result, jpeg = parse_sample(device_id, payload)
        relative = f"{device_id}/{result['event_id']}.jpg"
        with self.lock:
            # a repeated event keeps its first image: it may be labelled already
            if self.db.execute("SELECT 1 FROM samples WHERE event_id = ?", (result["event_id"],)).fetchone():
                return False
            self._check_room(len(jpeg))
            path = self.folder / relative
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(jpeg)
            self.used_bytes += len(jpeg)
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO samples (event_id, device_id, seen_at, received_ms, model_version, "
                "model_sha256, predicted, confidence, uncertain, file) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    result["event_id"],
                    device_id,
                    str(result.get("timestamp", "")),
                    int(time.time() * 1000),
                    str(result["model"]["version"]),
                    str(result["model"]["sha256"]),
                    str(result["label"]),
                    float(result["confidence"]),
                    int(bool(result.get("uncertain"))),
                    relative,
                ),
            )
        return cursor.rowcount == 1

    def list(
        self,
        device: str | None = None,
        model_version: str | None = None,
        state: str = "unlabelled",
        limit: int = 200,
    ) -> list[Sample]:
        """Uncertain first, then least confident first: the frames that teach the model most."""
        where, params = [], []
        if device:
            where.append("device_id = ?")
            params.append(device)
        if model_version:
            where.append("model_version = ?")
            params.append(model_version)
        if state == "unlabelled":
            where.append("human_label IS NULL")
        elif state == "labelled":
            where.append("human_label IS NOT NULL")
        elif state != "all":
            raise ConfigError("state must be unlabelled, labelled or all")
        sql = (
            "SELECT event_id, device_id, seen_at, model_version, model_sha256, predicted, confidence, "
            "uncertain, human_label, file FROM samples"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY uncertain DESC, confidence ASC, event_id LIMIT ?"
        )
        with self.lock:
            rows = self.db.execute(sql, (*params, max(1, min(limit, 1000)))).fetchall()
        return [Sample(*row[:7], bool(row[7]), row[8], row[9]) for row in rows]

    def label(self, event_id: str, human_label: str) -> bool:
        if human_label not in HUMAN_LABELS:
            raise ConfigError(f"label must be one of {', '.join(HUMAN_LABELS)}")
        with self.lock:
            cursor = self.db.execute(
                "UPDATE samples SET human_label = ?, labelled_ms = ? WHERE event_id = ?",
                (human_label, int(time.time() * 1000), event_id),
            )
        return cursor.rowcount == 1

    def image(self, event_id: str) -> Path | None:
        with self.lock:
            row = self.db.execute("SELECT file FROM samples WHERE event_id = ?", (event_id,)).fetchone()
        return self.folder / row[0] if row else None

    def progress(self) -> dict[str, Any]:
        with self.lock:
            rows = self.db.execute(
                "SELECT coalesce(human_label, 'unlabelled'), count(*) FROM samples GROUP BY 1"
            ).fetchall()
            devices = [r[0] for r in self.db.execute("SELECT DISTINCT device_id FROM samples ORDER BY 1")]
            versions = [
                r[0] for r in self.db.execute("SELECT DISTINCT model_version FROM samples ORDER BY 1")
            ]
        counts = {name: 0 for name in ("unlabelled", *HUMAN_LABELS)}
        counts.update(dict(rows))
        return {
            "total": sum(counts.values()),
            "counts": counts,
            "devices": devices,
            "model_versions": versions,
        }

    def export(self, out: Path, device: str | None = None) -> dict[str, int]:
        """Labelled samples (not skipped) as ``out/plastic/*.jpg`` and ``out/non_plastic/*.jpg``."""
        counts = {"plastic": 0, "non_plastic": 0, "missing_image": 0}
        for sample in self.list(device=device, state="labelled", limit=1000000):
            if sample.human_label not in ("plastic", "non_plastic"):
                continue
            source = self.folder / sample.file
            if not source.is_file():  # deleted by hand: the rest still export
                counts["missing_image"] += 1
                continue
            target = out / sample.human_label / f"{sample.device_id}_{sample.event_id}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            counts[sample.human_label] += 1
        return counts

    def prune(self, state: str, older_than_days: float = 0.0, device: str | None = None) -> tuple[int, int]:
        """Delete samples (row and image) in ``state`` (labelled, skipped or all) received more than
        ``older_than_days`` ago; returns (samples, bytes) freed. Export labelled ones first."""
        where = {"labelled": "human_label IS NOT NULL", "skipped": "human_label = 'skip'", "all": "1 = 1"}
        if state not in where:
            raise ConfigError("state must be labelled, skipped or all")
        cutoff = int((time.time() - older_than_days * 86400) * 1000)
        sql = f"SELECT event_id, file FROM samples WHERE {where[state]} AND received_ms <= ?"
        params: list[Any] = [cutoff]
        if device:
            sql += " AND device_id = ?"
            params.append(device)
        freed = 0
        with self.lock:
            rows = self.db.execute(sql, params).fetchall()
            for event_id, file in rows:  # the row first: a row without its image would break export
                self.db.execute("DELETE FROM samples WHERE event_id = ?", (event_id,))
                path = self.folder / file
                freed += path.stat().st_size if path.is_file() else 0
                path.unlink(missing_ok=True)
            self.used_bytes = max(0, self.used_bytes - freed)
        return len(rows), freed

    def close(self) -> None:
        with self.lock:
            self.db.close()


class SampleSubscriber:
    """Receives ``<prefix>/+/sample`` (QoS 1, persistent session, so samples sent while this
    server was down arrive when it is back) into a SampleStore."""

    def __init__(
        self, broker: BrokerSection, prefix: str, store: SampleStore, client_id: str | None = None
    ) -> None:
        self.prefix = prefix
        self.store = store
        self.stored = 0
        self.rejected = 0
        self.client = make_client(broker, client_id or "ecolens-samples", clean_session=False)
        self.client.on_connect = lambda c, *_: c.subscribe(f"{prefix}/+/{SAMPLE_LEAF}", qos=1)
        self.client.on_message = self._on_message
        self.broker = broker

    def _on_message(self, client, userdata, message) -> None:
        """One line for a sample that is not stored; never an exception (it would stop paho's
        network thread, and with it every later sample)."""
        parts = message.topic.split("/")
        try:
            if self.store.add(parts[-2], message.payload):
                self.stored += 1
        except SampleRejected as exc:
            self.rejected += 1
            log.warning(
                "sample on %s rejected: %s", printable(message.topic[:200]), printable(str(exc)[:300])
            )
        except (OSError, sqlite3.Error) as exc:  # a full disk, a removed folder
            self.rejected += 1
            log.error("sample on %s not stored: %s", printable(message.topic[:200]), printable(exc))

    def start(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

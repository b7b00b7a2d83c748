"""Samples the bins send for labelling, kept as JPEG files plus one SQLite table (bin, time,
model version, predicted label and confidence, human label) under a cap on the folder, quotas per
bin (fleet.samples.quota: allocated bytes and files) and a free-disk floor, listed fairly across
bins, and exported as class folders for `ecolens adapt`."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.fleet.samples.parse import SampleRejected, parse_sample
from ecolens.fleet.samples.quota import MB, Quota, Usage, allocated

HUMAN_LABELS = ("plastic", "non_plastic", "skip")
# Anyone who may publish on <prefix>/+/sample could otherwise fill the disk the results database
# shares: samples stop at a cap on their folder, and before the disk's last gigabyte.
DEFAULT_MAX_MB = 5000  # ~500,000 samples of the daemon's default 10 kB
DEFAULT_BIN_MAX_MB = 500  # one bin's share: ~50,000 samples, years of a bin's 44 a day
DEFAULT_BIN_MAX_FILES = 50_000
MIN_FREE_BYTES = 1024**3
RECOUNT_INTERVAL_S = 60.0  # while full, look at the folder again at most this often (after a prune)

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


class SampleStore:
    """Files under ``folder/<device>/<event_id>.jpg`` and ``folder/samples.sqlite3``."""

    def __init__(
        self,
        folder: Path,
        max_bytes: int = DEFAULT_MAX_MB * MB,
        min_free_bytes: int = MIN_FREE_BYTES,
        recount_interval_s: float = RECOUNT_INTERVAL_S,
        bin_max_bytes: int | None = None,
        bin_max_files: int = DEFAULT_BIN_MAX_FILES,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.quota = Quota(max_bytes, bin_max_bytes or min(max_bytes, DEFAULT_BIN_MAX_MB * MB), bin_max_files)
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
            self.usage = Usage(folder)
            self.usage.recount(self.db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"samples folder {folder} is not usable: {exc}") from exc
        self.lock = threading.Lock()

    def _check_room(self, device_id: str, size: int) -> None:
        """SampleRejected when this image would pass the bin's quota, the folder's cap or the
        disk's floor. While full, the folder is counted again now and then: `ecolens samples
        prune` (another process) makes room without a restart."""
        now = time.monotonic()
        refusal = self.usage.refusal(self.quota, device_id, size)
        if refusal and now - self._counted_at >= self.recount_interval_s:
            self.usage.recount(self.db)
            self._counted_at = now
            refusal = self.usage.refusal(self.quota, device_id, size)
        if refusal:
            raise SampleRejected(refusal)
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
            self._check_room(device_id, len(jpeg))
            path = self.folder / relative
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(jpeg)
            self.usage.added(device_id, path)
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
        """Uncertain first, then least confident first: the frames that teach the model most;
        taken in turns from each bin (its best, then every bin's second...), so that one bin
        sending many samples cannot fill the view."""
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
        order = "uncertain DESC, confidence ASC, event_id"
        sql = (
            "SELECT event_id, device_id, seen_at, model_version, model_sha256, predicted, confidence, "
            f"uncertain, human_label, file, row_number() OVER (PARTITION BY device_id ORDER BY {order}) "
            "AS turn FROM samples"
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY turn, {order} LIMIT ?"
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
        sql = f"SELECT event_id, device_id, file FROM samples WHERE {where[state]} AND received_ms <= ?"
        params: list[Any] = [cutoff]
        if device:
            sql += " AND device_id = ?"
            params.append(device)
        freed = 0
        with self.lock:
            rows = self.db.execute(sql, params).fetchall()
            for event_id, device_id, file in rows:  # the row first: a row without its image breaks export
                self.db.execute("DELETE FROM samples WHERE event_id = ?", (event_id,))
                path = self.folder / file
                size = allocated(path)
                path.unlink(missing_ok=True)
                self.usage.removed(device_id, size)
                freed += size
        return len(rows), freed

    def close(self) -> None:
        with self.lock:
            self.db.close()

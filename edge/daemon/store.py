"""Store and forward: every result is committed to SQLite (WAL) before it is published and
deleted only when the broker acknowledged it, so results survive broker outages, network
cuts, ``kill -9`` and power cuts. Bounded: when full, the oldest result is dropped and counted.

Durability (``synchronous``): ``full`` fsyncs the WAL inside each commit, before the result
can be published (one fsync per commit, 0.2 ms on a quiet disk, 4-8 ms on a busy shared one);
``background`` (the default) commits without waiting for the disk (the WAL is written, so a
crash or ``kill -9`` loses nothing) and a sync thread fsyncs the WAL within 50 ms, after the
result has been published: a power cut can lose the results of the last 50 ms that the broker
had not acknowledged, and the disk's latency is off the publish path; ``normal`` is SQLite's
NORMAL (fsync only at checkpoints): crash-safe, and a power cut may lose every result written
since the last checkpoint that the broker had not acknowledged.

A queue file is moved aside only when SQLite says it is damaged *and* ``PRAGMA
integrity_check`` (read-only) confirms it: a full disk, a read-only folder or missing
permissions are one clear error, and the results stay where they are.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    qos INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


# SQLite's answers for a damaged file; every other error (full, read-only, I/O, locked) is a
# condition of the machine, not of the file.
DAMAGE_CODES = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
# The queue's durability modes (module docstring) and the SQLite setting each one runs with.
SYNC_PRAGMA = {"full": "FULL", "background": "NORMAL", "normal": "NORMAL"}
# ``background``: how often the sync thread looks for commits to put on disk (WalSyncer).
SYNC_INTERVAL_S = 0.05


def is_damage(exc: sqlite3.Error) -> bool:
    name = getattr(exc, "sqlite_errorname", "") or ""  # Python 3.11+
    text = str(exc).lower()
    return name.startswith(DAMAGE_CODES) or "malformed" in text or "not a database" in text


def disk_full(folder: Path) -> bool:
    """SQLite reports a full disk as "disk I/O error" when it cannot grow its -shm file."""
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def explain(exc: BaseException, path: Path) -> str:
    """The error with what to do about it, on one line."""
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered or getattr(exc, "errno", None) == 28 or disk_full(path.parent):
        return f"{text}: the disk is full, free space on the file system of {path.parent}"
    if "readonly" in lowered or "read-only" in lowered or "unable to open" in lowered:
        return f"{text}: the service user must be able to write {path.parent}"
    return text


@dataclass(frozen=True)
class QueuedResult:
    id: int
    event_id: str
    topic: str
    payload: str
    qos: int


class WalSyncer(threading.Thread):
    """``synchronous = "background"``: fsyncs the queue's WAL every ``interval_s`` when a commit
    was made since the last fsync, in its own thread (``os.fsync`` releases the GIL).

    A commit does not wake this thread: measured on the 2-core development machine under load,
    a thread woken at the moment of the commit delayed the result's publish by 3-4 ms (p50 8.9
    vs 5.0 ms frame-to-PUBACK), as much as the fsync itself. So it looks every ``interval_s``
    (20 wake-ups a second, nothing else when idle), and a result is on disk at most
    ``interval_s`` plus one fsync after its commit. ``synced`` reaches ``requested`` once every
    commit so far is on disk."""

    def __init__(self, wal: Path, interval_s: float = SYNC_INTERVAL_S) -> None:
        super().__init__(name="queue-sync", daemon=True)
        self.interval_s = interval_s
        # The WAL exists once the connection has read the file; its inode lives as long as the
        # connection is open (checkpoints rewrite it in place), so one descriptor serves for ever.
        self._fd = os.open(wal, os.O_RDONLY | os.O_CREAT, 0o600)
        folder = os.open(wal.parent, os.O_RDONLY)
        try:
            os.fsync(folder)  # the WAL's directory entry too, once: a new file is not durable without it
        finally:
            os.close(folder)
        self._closing = threading.Event()
        self._done = threading.Condition()
        self.requested = 0  # commits so far (counted under the queue's lock)
        self.synced = 0  # commits known to be on disk
        self.errors = 0

    def request(self) -> None:
        """One more commit to put on disk; deliberately no wake-up (class docstring)."""
        self.requested += 1

    def run(self) -> None:
        while not self._closing.wait(self.interval_s):
            self._sync()
        self._sync()  # what the last interval committed

    def _sync(self) -> None:
        target = self.requested
        if target == self.synced:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.errors += 1
            log.error("queue WAL not synced to disk: %s", exc, extra={"event": "store_error"})
        with self._done:
            self.synced = target
            self._done.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """True once every commit requested so far is on disk (tests)."""
        target = self.requested
        with self._done:
            return self._done.wait_for(lambda: self.synced >= target, timeout)

    def close(self) -> None:
        self._closing.set()
        self.join(10)
        os.close(self._fd)


class ResultQueue:
    """One connection shared by the pipeline (put) and the MQTT thread (pending, delete)."""

    def __init__(self, path: Path, max_items: int = 10_000, synchronous: str = "background") -> None:
        if synchronous not in SYNC_PRAGMA:
            raise ConfigError(f"store.synchronous: {synchronous!r} is not one of {', '.join(SYNC_PRAGMA)}")
        self.path = Path(path)
        self.max_items = max_items
        self.synchronous = synchronous
        self._lock = threading.Lock()
        self._burst_drops = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"store.path: cannot create {self.path.parent}: {exc}") from exc
        self._db = self._open(synchronous)
        self.syncer: WalSyncer | None = None
        journal = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if synchronous == "background" and journal != "wal":
            # The sync thread fsyncs the WAL; without one (a file system SQLite cannot share
            # memory on) every commit is fsync'd by SQLite itself instead.
            log.warning("queue %s cannot use WAL (journal %s): store.synchronous = full", self.path, journal)
            self._db.execute("PRAGMA synchronous=FULL")
        elif synchronous == "background":
            self.syncer = WalSyncer(self.path.with_name(self.path.name + "-wal"))
            self.syncer.start()

    def _open(self, synchronous: str) -> sqlite3.Connection:
        try:
            return self._connect(synchronous)
        except sqlite3.Error as exc:
            if not self.path.exists() or not is_damage(exc) or not self._damaged():
                reason = explain(exc, self.path)
                raise ConfigError(f"store.path: cannot use queue {self.path}: {reason}") from None
            # A damaged file is kept aside for inspection, never deleted.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            try:
                self.path.rename(aside)
            except OSError as rename_error:
                raise ConfigError(
                    f"store.path: queue {self.path} is damaged ({exc}) and cannot be moved aside: "
                    f"{explain(rename_error, self.path)}"
                ) from None
            log.error("queue %s is damaged (%s); moved to %s, starting empty", self.path, exc, aside)
            return self._connect(synchronous)

    def _damaged(self) -> bool:
        """Confirmed by ``PRAGMA integrity_check`` on a read-only connection; an error that is
        not damage itself (full disk, no permission) means "cannot tell": keep the file."""
        try:
            with closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as db:
                rows = db.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as exc:
            return is_damage(exc)
        return rows != [("ok",)]

    def _connect(self, synchronous: str) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.OperationalError as exc:
            reason = explain(exc, self.path)
            raise ConfigError(f"store.path: cannot open queue {self.path}: {reason}") from None
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={SYNC_PRAGMA[synchronous]}")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
            # Milliseconds for a full queue; finds damage now rather than in the MQTT thread.
            problems = db.execute("PRAGMA quick_check").fetchall()
            if problems != [("ok",)]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {problems[0][0]}")
        except BaseException:
            db.close()
            raise
        return db

    def put(self, event_id: str, topic: str, payload: str, qos: int) -> int:
        """Commit one result; returns how many old results were dropped to make room."""
        return self._insert(event_id, topic, lambda: payload, qos)

    def put_result(self, result: dict[str, Any], topic: str, qos: int) -> int:
        """Number the result (``seq``: this bin's next, kept in the queue file so it goes on
        across restarts) and commit it in the same transaction, so numbers have no gaps but
        results that are really lost (queue full, a queue file lost). Returns the drops."""

        def numbered() -> str:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
            result["seq"] = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('seq', ?)", (result["seq"],))
            return json.dumps(result)

        return self._insert(result["event_id"], topic, numbered, qos)

    def _insert(self, event_id: str, topic: str, payload: Callable[[], str], qos: int) -> int:
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                depth = self._db.execute("SELECT count(*) FROM queue").fetchone()[0]
                dropped = max(0, depth + 1 - self.max_items)
                if dropped:
                    self._db.execute(
                        "DELETE FROM queue WHERE id IN (SELECT id FROM queue ORDER BY id LIMIT ?)",
                        (dropped,),
                    )
                    self._db.execute(
                        "INSERT INTO counters VALUES ('dropped', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (dropped,),
                    )
                self._db.execute(
                    "INSERT OR IGNORE INTO queue (event_id, topic, payload, qos, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (event_id, topic, payload(), qos, time.time()),
                )
            self._written()  # after the commit: the sync thread may fsync at once
        self._note_drops(dropped)
        return dropped

    def _written(self) -> None:
        """A commit that has to reach the disk (``background``: the sync thread's next look)."""
        if self.syncer is not None:
            self.syncer.request()

    def _note_drops(self, dropped: int) -> None:
        """One warning when a burst of drops starts and one line when it ends, not one per
        dropped result (a long broker outage would otherwise flood the journal)."""
        if dropped and not self._burst_drops:
            log.warning(
                "queue full (%d results): dropping the oldest results until the broker takes them",
                self.max_items,
                extra={"event": "queue_full"},
            )
        if dropped:
            self._burst_drops += dropped
        elif self._burst_drops:
            log.warning("queue has room again; %d results were dropped", self._burst_drops)
            self._burst_drops = 0

    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list:
        """The oldest ``limit`` results not already in flight."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, event_id, topic, payload, qos FROM queue ORDER BY id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        return [QueuedResult(*row) for row in rows if row[0] not in exclude][:limit]

    def delete(self, row_id: int) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM queue WHERE id = ?", (row_id,))

    def depth(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM queue").fetchone()[0]

    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        if self.syncer is not None:
            self.syncer.close()  # the last commits' fsync first; closing then checkpoints
        with self._lock:
            self._db.close()

"""`ecolens aggregate`'s MQTT side: a persistent MQTT 5 session that hands messages to a
writer thread, which stores them in batches and only then acknowledges them to the broker.

Why this order: the broker keeps every unacknowledged QoS 1 message of a persistent session
and sends it again after a crash or restart, and storage ignores a repeated event_id, so a
result is stored exactly once whatever fails in between.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecolens.core.backoff import Backoff
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, ConnectFailed, MqttError
from ecolens.core.wire import (
    RejectionKind,
    device_of,
    result_topic,
    stats_filter,
    status_topic,
    subscriptions,
)
from ecolens.fleet.binstats import LatestStats, parse_stats
from ecolens.fleet.config.storage import StorageSection
from ecolens.fleet.config.subscriber import SubscriberSection
from ecolens.fleet.ingest_stats import IngestStats
from ecolens.fleet.messages import make_rejected, parse_message
from ecolens.fleet.payload import PayloadError, printable
from ecolens.fleet.rejections import reason_kind
from ecolens.fleet.retention import prune
from ecolens.fleet.storage.binstats import write_stats
from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult, WriteOutcome

if TYPE_CHECKING:  # paho only once the aggregator starts: bench/fleet.py imports this module
    from ecolens.core.mqtt.client import Message, MqttClient

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0
STATS_WRITE_S = 2.0  # how often the bins' newest stats are written (one short transaction)


def now_ms() -> int:
    return int(time.time() * 1000)


def default_client_id() -> str:
    """A fresh unguessable id, for callers that keep no state; `ecolens aggregate` passes the id
    it keeps (fleet.client_ids), so that a restart finds its persistent session."""
    return f"ecolens-aggregator-{secrets.token_hex(16)}"


@dataclass
class Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int


def _sum(one: WriteOutcome, two: WriteOutcome) -> WriteOutcome:
    return WriteOutcome(
        stored=one.stored + two.stored,
        duplicates=one.duplicates + two.duplicates,
        statuses=one.statuses + two.statuses,
        rejected=one.rejected + two.rejected,
    )


def _origin(item: StoredResult | StatusUpdate | Rejected) -> str:
    return item.topic if isinstance(item, Rejected) else item.device_id


class Aggregator:
    """Subscribes, batches, stores, acknowledges. ``start()`` returns once connected."""

    def __init__(
        self,
        broker: BrokerSection,
        settings: SubscriberSection,
        database_factory: Callable[[], Database],
        client_id: str | None = None,
        retention: StorageSection | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.retention = retention or StorageSection()
        self._pruned_at: float | None = None  # monotonic time of the last prune (None: at start)
        self.database_factory = database_factory
        self.client_id = client_id or broker.client_id or default_client_id()
        self.stats = IngestStats()
        self._version_refused: set[str] = set()  # result topics already logged as unreadable
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: MqttClient | None = None
        self._also: list[tuple[str, int, Callable[[Message], None]]] = []
        self._store: ResultStore | None = None
        self._latest_stats = LatestStats()
        self._stats_written_at = 0.0  # monotonic time of the last stats write
        self.failed = threading.Event()  # set when the writer died: the process must exit
        self.failure: str | None = None

    # -- MQTT -------------------------------------------------------------------------------
    def _make_client(self) -> MqttClient:
        """A persistent MQTT 5 session (never a clean start) whose messages are acknowledged
        only once stored (manual_ack)."""
        from ecolens.core.mqtt.client import MqttClient

        client = MqttClient(
            self.broker,
            self.client_id,
            mqtt5=True,
            manual_ack=True,
            clean_start=False,
            session_expiry_s=self.settings.session_expiry_s,
            receive_maximum=self.settings.receive_maximum,
        )
        for topic in subscriptions(self.settings.prefix, self.settings.share_group):
            client.subscribe(topic, qos=1)
        client.on_connected = self._on_connect
        client.on_disconnected = self._on_disconnect
        client.on_subscribed = self._on_subscribe
        client.on_error = self._on_error
        client.subscribe(stats_filter(self.settings.prefix), qos=0)
        client.route(stats_filter(self.settings.prefix), self._on_stats)
        for topic_filter, qos, handler in self._also:
            client.subscribe(topic_filter, qos=qos)
            client.route(topic_filter, handler, ack_after=True)
        client.route_others(self._on_message)  # whatever the session delivers is parsed (or rejected)
        return client

    def also_subscribe(self, topic_filter: str, qos: int, handler: Callable[[Message], None]) -> None:
        """Another part of the aggregator (samples) on this connection, before start(): the
        shipped broker makes the user name the client id (one connection per user). ``handler``
        runs on the network thread; the message is acknowledged once it returns."""
        self._also.append((topic_filter, qos, handler))

    @property
    def client(self) -> MqttClient:
        """The running connection (the canary's rollbacks and re-signs publish on it)."""
        assert self._client is not None, "start() first"
        return self._client

    def _on_error(self, error: MqttError) -> None:
        self.stats.last_error = str(error)
        log.error("%s", self.stats.last_error)

    def _on_connect(self, session_present: bool) -> None:
        log.info(
            "connected to %s:%d as %s (session %s), subscribing to %s",
            self.broker.host,
            self.broker.port,
            self.client_id,
            "resumed" if session_present else "new",
            ", ".join(subscriptions(self.settings.prefix, self.settings.share_group)),
        )

    def _on_subscribe(self, granted: list[int]) -> None:
        """Ready only once the broker has granted the subscriptions: on a new session,
        whatever is published before the SUBACK is not queued for us."""
        self.stats.connected = True
        if self.stats.last_error and not self.stats.last_error.startswith("storage"):
            self.stats.last_error = None
        self._connected.set()
        log.info("subscriptions granted (QoS %s)", ", ".join(str(qos) for qos in granted))

    def _on_disconnect(self, reason: str) -> None:
        self.stats.connected = False
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, message: Message) -> None:
        self.stats.add(received=1)
        self.stats.last_message_ms = now_ms()
        self._queue.put(Incoming(message.mid, message.qos, message.topic, message.payload, now_ms()))

    def _on_stats(self, message: Message) -> None:
        """Parsed here (cheap), kept as the bin's newest, written by the writer thread."""
        self.stats.add(stats_received=1)
        self.stats.last_message_ms = now_ms()
        device_id = device_of(message.topic)
        try:
            self._latest_stats.put(parse_stats(device_id, message.payload, now_ms()))
        except PayloadError as exc:
            self.stats.add(stats_rejected=1)
            log.debug("stats from %s ignored: %s", printable(device_id)[:100], exc)

    # -- storage ----------------------------------------------------------------------------
    def _next_batch(self) -> list[Incoming]:
        """Wait for one message, then gather up to batch_size for at most batch_wait_ms."""
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.settings.batch_wait_ms / 1000.0
        while len(batch) < self.settings.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(item)
        return batch

    def _log_rejected(self, item: Rejected) -> None:
        """One line per message, except a newer contract major: one line per bin (a bin
        upgraded ahead of its aggregator sends every result so), each one still counted."""
        if item.kind == RejectionKind.CONTRACT_VERSION.value:
            if item.topic in self._version_refused:
                return
            self._version_refused.add(item.topic)
        log.warning("rejected message on %s: %s", item.topic, item.reason)

    def _store_batch(self, batch: list[Incoming]) -> bool:
        """Retries until the batch is committed (database restarts lose nothing), then acks.
        False when stopping before it could be stored: unacknowledged, the broker resends it."""
        prefix, limit = self.settings.prefix, self.settings.max_payload_bytes
        parsed = [parse_message(prefix, m.topic, m.payload, m.received_ms, limit) for m in batch]
        for item in parsed:
            if isinstance(item, Rejected):
                self._log_rejected(item)
                self.stats.rejected_as(reason_kind(item))
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        while True:
            try:
                outcome = self._write_isolating(parsed)
                break
            except Exception as exc:  # database down, disk full...: keep the batch, retry
                self.stats.add(write_errors=1)
                self.stats.last_error = f"storage: {exc}"
                delay = backoff.next()
                log.error("storing %d messages failed (%s); retrying in %.1fs", len(batch), exc, delay)
                if self._stopping.wait(delay):
                    log.warning("stopping: %d unstored messages left to the broker", len(batch))
                    return False
                self._reopen_database()
        if self.stats.last_error and self.stats.last_error.startswith("storage"):
            log.info("storage works again")
            self.stats.last_error = None
        log.debug("stored a batch of %d messages", len(batch))
        assert self._client is not None
        for message in batch:
            if message.qos > 0:
                self._client.ack(message.mid, message.qos)
        self.stats.lag_s = round(now_ms() / 1000 - min(m.received_ms for m in batch) / 1000, 3)
        self.stats.last_commit_ms = now_ms()
        self.stats.add(
            stored=outcome.stored,
            duplicates=outcome.duplicates,
            rejected=outcome.rejected,
            statuses=outcome.statuses,
            batches=1,
        )
        if outcome.duplicates:
            log.debug("%d duplicate results ignored", outcome.duplicates)
        return True

    def _write(self, parsed: list[StoredResult | StatusUpdate | Rejected]) -> WriteOutcome:
        assert self._store is not None
        return self._store.write(
            [p for p in parsed if isinstance(p, StoredResult)],
            [p for p in parsed if isinstance(p, StatusUpdate)],
            [p for p in parsed if isinstance(p, Rejected)],
        )

    def _write_isolating(self, parsed: list[StoredResult | StatusUpdate | Rejected]) -> WriteOutcome:
        """One transaction for the batch; when the database refuses it while still answering,
        one row is to blame: halve until it is found, store it as rejected, keep the rest.
        An unreachable database raises (the caller retries the whole batch)."""
        try:
            return self._write(parsed)
        except Exception as exc:
            if not self._database_answers():
                raise
            if len(parsed) > 1:
                middle = len(parsed) // 2
                return _sum(self._write_isolating(parsed[:middle]), self._write_isolating(parsed[middle:]))
            return self._refuse(parsed[0], exc)

    def _refuse(self, item: StoredResult | StatusUpdate | Rejected, exc: Exception) -> WriteOutcome:
        """The database refused this one row: keep it in ``rejected`` so it can be acknowledged."""
        reason = f"storage refused it: {type(exc).__name__}: {exc}"
        prefix = self.settings.prefix
        if isinstance(item, StoredResult):
            text, topic = item.payload, result_topic(prefix, item.device_id)
        elif isinstance(item, Rejected):
            text, topic = item.payload, item.topic
        else:
            text, topic = item.status, status_topic(prefix, item.device_id)
        payload = text.encode("utf-8", errors="backslashreplace")
        rejected = make_rejected(topic, payload, now_ms(), reason, RejectionKind.OTHER)
        try:
            outcome = self._write([rejected])
        except Exception:  # not even the escaped copy: keep only why (else: an outage, raise)
            outcome = self._write([rejected._replace(payload="")])
        log.error("message from %s refused by the database, kept in rejected: %s", _origin(item), exc)
        self.stats.add(refused_by_storage=1)
        return outcome

    def _database_answers(self) -> bool:
        try:
            assert self._store is not None
            self._store.database.query("SELECT 1")
            return True
        except Exception:
            return False

    def _reopen_database(self) -> None:
        try:
            if self._store is not None:
                self._store.database.close()
            self._store = ResultStore(self.database_factory())
        except Exception as exc:
            log.debug("database not reachable yet: %s", exc)

    def _write_loop(self) -> None:
        """The writer thread. If it dies, nothing is stored or acknowledged any more: flag it
        so that the process exits non-zero (and systemd restarts it) instead of looking alive."""
        self.stats.writer = "running"
        try:
            while not (self._stopping.is_set() and self._queue.empty()):
                batch = self._next_batch()
                if batch and not self._store_batch(batch):
                    break
                self._write_stats_when_due()
                self._prune_when_due()
        except BaseException as exc:
            self.failure = f"the writer thread stopped: {type(exc).__name__}: {exc}"
            self.stats.writer = "dead"
            self.stats.last_error = self.failure
            log.critical("%s", self.failure, exc_info=True)
            self.failed.set()
            return
        self.stats.writer = "stopped"

    def _write_stats_when_due(self) -> None:
        """The bins' newest stats, every STATS_WRITE_S, in their own short transaction. A
        failure (database away) keeps them for the next try; results are never held up."""
        now = time.monotonic()
        if now - self._stats_written_at < STATS_WRITE_S:
            return
        self._stats_written_at = now
        latest = self._latest_stats.take()
        if not latest or self._store is None:
            return
        try:
            write_stats(self._store.database, latest)
        except Exception as exc:
            self._latest_stats.give_back(latest)
            log.warning("storing %d bins' stats failed (%s); trying again", len(latest), exc)

    def _prune_when_due(self) -> None:
        """Apply [storage]'s limits on results, refused messages and status events at start and every
        prune_interval_s, on this thread (it owns the connection). A failure is one warning:
        the next try is an interval later, and storing results goes on."""
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < self.retention.prune_interval_s:
            return
        self._pruned_at = now
        settings = self.retention
        try:
            assert self._store is not None
            pruned = prune(
                self._store.database,
                now_ms(),
                settings.keep_rejected_days,
                settings.max_rejected_rows,
                settings.keep_status_days,
                settings.keep_results_days,
            )
        except Exception as exc:
            log.warning("pruning old rows ([storage] limits) failed: %s", exc)
            return
        if pruned.rejected or pruned.status_events or pruned.results:
            log.info(
                "pruned %d results, %d refused messages and %d status events ([storage] limits)",
                pruned.results,
                pruned.rejected,
                pruned.status_events,
            )

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Aggregator:
        """Open storage (creating/migrating the schema), connect, subscribe."""
        self._store = ResultStore(self.database_factory())
        self._client = self._make_client()
        try:
            self._client.connect()
        except ConnectFailed as exc:
            self._store.database.close()
            raise ConfigError(
                f"cannot connect to the MQTT broker {self.broker.host}:{self.broker.port}: {exc.cause}"
            ) from exc
        self._client.start()
        self._writer = threading.Thread(target=self._write_loop, name="fleet-writer", daemon=True)
        self._writer.start()
        if not self._connected.wait(timeout):
            reason = self.stats.last_error or "no answer"
            self.stop()
            raise ConfigError(f"MQTT broker {self.broker.host}:{self.broker.port}: {reason}")
        return self

    def stop(self) -> None:
        """Store and acknowledge what was received, then leave; the session stays on the
        broker, which queues what is published until the next start."""
        self._stopping.set()
        if self._writer is not None:
            self._writer.join()
        if self._client is not None:
            self._client.stop()
        if self._store is not None:
            self._store.database.close()
            self._store = None

    def wait_idle(self, quiet_s: float = 0.5, timeout: float = 60.0) -> bool:
        """True once nothing has arrived or been pending for ``quiet_s`` (tests, benchmark)."""
        deadline = time.monotonic() + timeout
        last = (-1, -1)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            snap = self.stats.snapshot()
            done = snap["stored"] + snap["duplicates"] + snap["rejected"] + snap["statuses"]
            state = (snap["received"], done)
            if state != last:
                last, stable_since = state, time.monotonic()
            elif state[0] == state[1] and time.monotonic() - stable_since >= quiet_s:
                return True
            time.sleep(0.05)
        return False

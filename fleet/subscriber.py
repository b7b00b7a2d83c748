"""`ecolens aggregate`'s MQTT side: a persistent MQTT 5 session that hands messages to a
writer thread, which stores them in batches and only then acknowledges them to the broker.

Why this order: the broker keeps every unacknowledged QoS 1 message of a persistent session
and sends it again after a crash or restart, and storage ignores a repeated event_id, so a
result is stored exactly once whatever fails in between.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from ecolens.core.backoff import Backoff
from ecolens.core.errors import ConfigError
from ecolens.core.mqtt import BrokerSection, make_client
from ecolens.core.topics import subscriptions
from ecolens.fleet.config.subscriber import SubscriberSection
from ecolens.fleet.messages import parse_message
from ecolens.fleet.storage.database import Database
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 30.0


def now_ms() -> int:
    return int(time.time() * 1000)


def default_client_id() -> str:
    """Stable across restarts (the broker finds the session by it), distinct per host."""
    return f"ecolens-aggregator-{socket.gethostname()}"


@dataclass
class Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int


@dataclass
class IngestStats:
    """Counters since start; read by the HTTP health endpoint and the benchmark."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    statuses: int = 0
    batches: int = 0
    write_errors: int = 0
    connected: bool = False
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}


class Aggregator:
    """Subscribes, batches, stores, acknowledges. ``start()`` returns once connected."""

    def __init__(
        self,
        broker: BrokerSection,
        settings: SubscriberSection,
        database_factory: Callable[[], Database],
        client_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.settings = settings
        self.database_factory = database_factory
        self.client_id = client_id or broker.client_id or default_client_id()
        self.stats = IngestStats()
        self._queue: queue.Queue[Incoming] = queue.Queue()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._writer: threading.Thread | None = None
        self._client: Any = None
        self._store: ResultStore | None = None

    # -- MQTT -------------------------------------------------------------------------------
    def _make_client(self) -> Any:
        client = make_client(self.broker, self.client_id, mqtt5=True, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _connect_properties(self) -> Any:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.settings.session_expiry_s
        properties.ReceiveMaximum = self.settings.receive_maximum
        return properties

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.last_error = f"broker refused the connection: {reason}"
            log.error("%s", self.stats.last_error)
            return
        from paho.mqtt.subscribeoptions import SubscribeOptions

        topics = subscriptions(self.settings.prefix, self.settings.share_group)
        client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in topics])
        log.info(
            "connected to %s:%d as %s (session %s), subscribing to %s",
            self.broker.host,
            self.broker.port,
            self.client_id,
            "resumed" if flags.session_present else "new",
            ", ".join(topics),
        )

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list, props: Any) -> None:
        """Ready only once the broker has granted the subscriptions: on a new session,
        whatever is published before the SUBACK is not queued for us."""
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self.stats.last_error = f"broker refused the subscriptions: {', '.join(refused)}"
            log.error("%s", self.stats.last_error)
            return
        self.stats.connected = True
        self._connected.set()
        log.info("subscriptions granted (QoS %s)", ", ".join(str(int(r.value)) for r in reasons))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any):
        self.stats.connected = False
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)
        self.stats.add(received=1)
        self._queue.put(Incoming(message.mid, message.qos, topic, message.payload, now_ms()))

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

    def _store_batch(self, batch: list[Incoming]) -> bool:
        """Retries until the batch is committed (database restarts lose nothing), then acks.
        False when stopping before it could be stored: unacknowledged, the broker resends it."""
        assert self._store is not None
        parsed = [parse_message(self.settings.prefix, m.topic, m.payload, m.received_ms) for m in batch]
        results = [p for p in parsed if isinstance(p, StoredResult)]
        statuses = [p for p in parsed if isinstance(p, StatusUpdate)]
        rejected = [p for p in parsed if isinstance(p, Rejected)]
        for item in rejected:
            log.warning("rejected message on %s: %s", item.topic, item.reason)
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        while True:
            try:
                outcome = self._store.write(results, statuses, rejected)
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
        log.debug("stored a batch of %d messages", len(batch))
        for message in batch:
            if message.qos > 0:
                self._client.ack(message.mid, message.qos)
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

    def _reopen_database(self) -> None:
        try:
            if self._store is not None:
                self._store.database.close()
            self._store = ResultStore(self.database_factory())
        except Exception as exc:
            log.debug("database not reachable yet: %s", exc)

    def _write_loop(self) -> None:
        while not (self._stopping.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if batch and not self._store_batch(batch):
                return

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> Aggregator:
        """Open storage (creating/migrating the schema), connect, subscribe."""
        self._store = ResultStore(self.database_factory())
        self._client = self._make_client()
        try:
            self._client.connect(
                self.broker.host,
                self.broker.port,
                keepalive=self.broker.keepalive,
                clean_start=False,
                properties=self._connect_properties(),
            )
        except (OSError, ValueError) as exc:
            self._store.database.close()
            raise ConfigError(
                f"cannot connect to the MQTT broker {self.broker.host}:{self.broker.port}: {exc}"
            ) from exc
        self._client.loop_start()
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
            self._client.disconnect()
            self._client.loop_stop()
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

"""The MQTT side of the daemon: one thread owns the MQTT client and drives it (``loop_once``,
so the client is never called from two threads) and forwards the SQLite queue to the broker.

A result leaves the queue only when its PUBACK arrives (on_publish). The number of results
sent but not acknowledged is bounded (``publish.max_inflight``). Connection failures are
retried in an explicit outer loop with exponential backoff, each logged with its cause
(refused, unknown host, TLS certificate, wrong credentials).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ecolens.core.backoff import Backoff
from ecolens.core.mqtt import BrokerSection, ConnectFailed, ConnectRefused, MqttError, broker_where
from ecolens.core.mqtt.client import Message, MqttClient, Will
from ecolens.core.wire import OFFLINE, STATS, STATUS, ha_birth_topic
from ecolens.edge.daemon.camera_state import CameraState
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection
from ecolens.edge.daemon.homeassistant import discovery_messages
from ecolens.edge.daemon.stats import DaemonStats
from ecolens.edge.daemon.store import ResultQueue, explain, is_damage

log = logging.getLogger(__name__)

LOOP_TIMEOUT_S = 0.05  # paho's own loop, used only while saying goodbye at stop
# The link sleeps in select() on the broker socket and a wake-up socket: a new result, a freed
# in-flight slot or a stop request wakes it at once; the timeout only paces keepalive and stats.
IDLE_TIMEOUT_S = 1.0


class SharedLink:
    """What another part of the daemon (the model updater) may do on the link's connection.
    One connection per bin: the shipped broker binds a client id to its user name
    (``use_username_as_clientid``), so a second connection with the bin's credentials would
    take this one over. Every call runs in the link thread, the client's only caller."""

    def __init__(self, link: MqttLink) -> None:
        self._link = link

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Now if connected, and again at every reconnect."""
        self._link.call_soon(lambda client: client.subscribe(topic_filter, qos))

    def unsubscribe(self, topic_filter: str) -> None:
        self._link.call_soon(lambda client: client.unsubscribe(topic_filter))

    def route(self, topic_filter: str, handler: Callable[[Message], None]) -> None:
        """Messages on ``topic_filter`` go to ``handler`` (called in the link thread: hand over)."""
        self._link.call_soon(lambda client: client.route(topic_filter, handler))

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None:
        self._link.call_soon(lambda client: client.publish(topic, payload, qos=qos, retain=retain))

    def on_connected(self, hook: Callable[[], None]) -> None:
        """``hook`` after every (re)connect, in the link thread (hand over, never block)."""
        self._link.connect_hooks.append(hook)


class MqttLink(threading.Thread):
    """Start with ``start()``; ``stop(drain_timeout)`` flushes the queue (bounded wait),
    publishes a clean retained ``offline`` and disconnects."""

    def __init__(
        self,
        broker: BrokerSection,
        publish: PublishSection,
        store: ResultQueue,
        stats: DaemonStats,
        homeassistant: HomeAssistantSection,
        model_info: Callable[[], dict[str, Any]],
        camera: CameraState | None = None,
        on_failure: Callable[[], None] = lambda: None,
        labels: Callable[[], Sequence[str]] = tuple,
    ) -> None:
        super().__init__(name="mqtt", daemon=True)
        self.broker = broker
        self.publish = publish
        self.store = store
        self.stats = stats
        self.homeassistant = homeassistant
        self.model_info = model_info
        self.camera = camera or CameraState("none")
        self.camera.on_change = lambda: self._interrupt()  # publish a new camera state at once
        self._status_version = -1  # the camera state last published
        self.on_failure = on_failure
        self.failure: str | None = None  # why this thread stopped for good (the daemon exits)
        self._to_delete: list[tuple[int, str]] = []  # acknowledged, not yet deleted (row, event)
        self._store_backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        self.labels = labels
        self.where = broker_where(broker)
        self.client_id = broker.client_id or f"ecolens-{publish.device_id}-{secrets.token_hex(4)}"
        self.client = MqttClient(
            broker,
            self.client_id,
            clean_session=True,
            will=Will(publish.topic(STATUS), OFFLINE, qos=1, retain=True),
            max_inflight=publish.max_inflight,
        )
        self.client.on_connected = self._on_connect
        self.client.on_disconnected = self._on_disconnect
        self.client.on_published = self._on_publish
        self.client.on_error = self._on_error
        if homeassistant.enabled:
            self.client.subscribe(ha_birth_topic(homeassistant.discovery_prefix), qos=1)
            self.client.route(ha_birth_topic(homeassistant.discovery_prefix), self._on_birth)
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._inflight: dict[int, tuple[int, str]] = {}  # mid -> (row id, event id)
        self.read_times: dict[str, float] = {}  # event id -> monotonic frame read time
        self._wake = threading.Event()
        self._wake.set()  # results left from a previous run are sent first
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._stop_requested = threading.Event()
        self._stop_deadline = 0.0
        self.connected = threading.Event()
        self._backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        self._next_stats = 0.0
        self.auth_failures = 0
        self._calls: queue.SimpleQueue[Callable[[MqttClient], None]] = queue.SimpleQueue()
        self.connect_hooks: list[Callable[[], None]] = []

    # --- called from other threads -------------------------------------------------------
    def notify(self, event_id: str | None = None, read_at: float | None = None) -> None:
        """A result was committed to the store."""
        if event_id is not None and read_at is not None:
            self.read_times[event_id] = read_at
        self._wake.set()
        self._interrupt()

    def call_soon(self, action: Callable[[MqttClient], None]) -> None:
        """``action(client)`` in the link thread at its next turn (SharedLink's calls)."""
        self._calls.put(action)
        self._interrupt()

    def shared(self) -> SharedLink:
        """This connection for another part of the daemon (see SharedLink)."""
        return SharedLink(self)

    def stop(self, drain_timeout: float) -> None:
        self._stop_deadline = time.monotonic() + drain_timeout
        self._stop_requested.set()
        self._interrupt()
        self.join(drain_timeout + 10)

    def _interrupt(self) -> None:
        """End the link thread's select() now (a full wake-up buffer already means 'wake')."""
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    # --- client hooks (run in this thread) ------------------------------------------------
    def _on_error(self, error: MqttError) -> None:
        if isinstance(error, ConnectRefused):
            self.auth_failures += 1
            log.error("%s", error, extra={"event": "mqtt_refused"})
        else:
            log.error("%s", error, extra={"event": "mqtt_error"})

    def _on_connect(self, session_present: bool) -> None:
        self._backoff.reset()
        log.info("connected to %s as %s", self.where, self.client_id, extra={"event": "mqtt_connected"})
        self._publish_status()
        if self.homeassistant.enabled:
            self._announce()
        for hook in self.connect_hooks:
            hook()
        self.connected.set()
        self._wake.set()

    def _on_disconnect(self, reason: str) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and not self._stop_requested.is_set():
            log.warning(
                "lost connection to %s: %s; results stay queued",
                self.where,
                reason,
                extra={"event": "mqtt_disconnected"},
            )

    def _on_publish(self, mid: int) -> None:
        # Called with paho's message lock held: only hand the ack over, never touch the client here.
        self._acks.put(mid)

    def _on_birth(self, message: Message) -> None:
        if message.payload == b"online":
            log.info("Home Assistant restarted: announcing sensors again")
            self._announce()

    # --- the thread --------------------------------------------------------------------------
    def run(self) -> None:
        """Store errors (disk full, I/O) are logged, counted in stats and retried; a damaged
        queue or an unexpected error ends the thread with ``failure`` set and ``on_failure``
        called, so the daemon stops with a non-zero exit (systemd restarts it) instead of
        living on with a queue nobody sends."""
        try:
            self._forward()
        except BaseException as exc:
            self.failure = f"the MQTT thread stopped: {type(exc).__name__}: {exc}"
            log.critical(self.failure, exc_info=True, extra={"event": "mqtt_thread_failed"})
            self.on_failure()

    def _run_calls(self) -> None:
        """What SharedLink asked for; one failing call is logged, the rest still run."""
        while True:
            try:
                action = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                action(self.client)
            except Exception:
                log.exception("a call on the MQTT link failed")

    def _forward(self) -> None:
        socket_open = False
        while True:
            self._run_calls()
            try:
                if self._stop_requested.is_set() and self._drained_or_late(socket_open):
                    break
            except sqlite3.Error as exc:
                self._store_trouble(self._not_damage(exc))
                continue
            if not socket_open:
                socket_open = self._connect()
                if not socket_open:
                    self._pause()
                    continue
            alive = self.client.loop_once(IDLE_TIMEOUT_S, self._wake_reader)
            # A deletion refused (disk full) must not stop sending: each step on its own.
            trouble = self._attempt(self._take_acks)
            if not alive:
                socket_open = False
                self.connected.clear()
                self._pause()
                continue
            if self.connected.is_set():
                if self.camera.version != self._status_version:
                    self._publish_status()
                trouble = self._attempt(self._feed) or trouble
                trouble = self._attempt(self._maybe_stats) or trouble
            if trouble is None:
                self._store_works()
            else:
                self._store_trouble(trouble)
        self._shutdown(socket_open)

    @staticmethod
    def _not_damage(exc: sqlite3.Error) -> sqlite3.Error:
        """A damaged queue cannot be retried: re-raised, it ends the thread."""
        if is_damage(exc):
            raise exc
        return exc

    def _attempt(self, step: Callable[[], None]) -> sqlite3.Error | None:
        try:
            step()
        except sqlite3.Error as exc:
            return self._not_damage(exc)
        return None

    def _store_trouble(self, exc: sqlite3.Error) -> None:
        """Log, count, wait (the one Backoff), retry; the daemon keeps running."""
        message = f"queue {self.store.path}: {explain(exc, self.store.path)}"
        self.stats.store_failed(message)
        delay = self._store_backoff.next()
        log.error("%s; retrying in %.1fs", message, delay, extra={"event": "store_error"})
        self._wake.set()
        deadline = time.monotonic() + delay
        while (left := self._wait_until(deadline) - time.monotonic()) > 0:
            # keep the connection alive meanwhile (PUBACKs are kept for the retry)
            if not self.client.loop(min(0.5, left)):
                time.sleep(min(0.5, left))
            self._collect_acks()

    def _wait_until(self, deadline: float) -> float:
        """While draining at stop, no wait goes past the drain deadline."""
        return min(deadline, self._stop_deadline) if self._stop_requested.is_set() else deadline

    def _store_works(self) -> None:
        if self.stats.store_error is not None:
            log.info("queue %s works again", self.store.path, extra={"event": "store_recovered"})
            self.stats.store_recovered()
            self._store_backoff.reset()

    def _pause(self) -> None:
        """Back off before the next attempt. While draining at stop the stop event is already
        set, so waiting on it would return at once (a busy loop of connects and error lines):
        sleep instead, never past the drain deadline."""
        delay = self._backoff.next()
        if self._stop_requested.is_set():
            time.sleep(max(0.0, min(delay, self._stop_deadline - time.monotonic())))
        else:
            self._stop_requested.wait(delay)

    def _connect(self) -> bool:
        try:
            self.client.connect()
            return True
        except ConnectFailed as exc:
            log.error("%s", exc, extra={"event": "mqtt_connect"})
            return False

    def _drained_or_late(self, socket_open: bool) -> bool:
        if time.monotonic() >= self._stop_deadline:
            return True
        return socket_open and self.connected.is_set() and not self._inflight and not (self.store.depth())

    def _collect_acks(self) -> None:
        """PUBACKs to deletions; kept until the deletion commits (a full disk can refuse it)."""
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # status, stats or discovery message
            row_id, event_id = entry
            # Latency ends at the PUBACK, before the queue's own bookkeeping (an fsync'd delete).
            read_at = self.read_times.pop(event_id, None)
            latency = (time.monotonic() - read_at) * 1000 if read_at is not None else None
            self.stats.acknowledged(latency)
            self._to_delete.append((row_id, event_id))

    def _take_acks(self) -> None:
        self._collect_acks()
        freed = False
        while self._to_delete:
            row_id, _ = self._to_delete[0]
            self.store.delete(row_id)
            self._to_delete.pop(0)
            freed = True
        if freed:
            self._wake.set()

    def _feed(self) -> None:
        room = self.publish.max_inflight - len(self._inflight)
        if room <= 0 or not self._wake.is_set():
            return
        self._wake.clear()
        in_flight = {row_id for row_id, _ in self._inflight.values()}
        in_flight.update(row_id for row_id, _ in self._to_delete)
        rows = self.store.pending(room, exclude=in_flight)
        for row in rows:
            publication = self.client.publish(row.topic, row.payload, qos=row.qos)
            if not publication.queued:
                log.error("publish failed: %s", publication.error)
                self._wake.set()
                break
            self._inflight[publication.mid] = (row.id, row.event_id)
        if len(rows) == room:
            self._wake.set()  # there may be more

    def _publish_status(self) -> None:
        """Retained ``online`` status with the camera state (the last will says ``offline``)."""
        self._status_version, payload = self.camera.status_payload()
        self.client.publish(self.publish.topic(STATUS), payload, qos=1, retain=True)

    def _maybe_stats(self) -> None:
        interval = self.publish.stats_interval_s
        now = time.monotonic()
        if interval <= 0 or now < self._next_stats:
            return
        self._next_stats = now + interval
        snapshot = self.stats.snapshot(self.store.depth(), self.store.dropped(), self.model_info())
        self.client.publish(self.publish.topic(STATS), json.dumps(snapshot), qos=0)

    def _announce(self) -> None:
        for topic, payload in discovery_messages(self.homeassistant, self.publish, self.labels()):
            self.client.publish(topic, payload, qos=1, retain=True)

    def _shutdown(self, socket_open: bool) -> None:
        try:
            left = self.store.depth()
        except sqlite3.Error:
            left = 0
        if left:
            log.warning(
                "stopping with %d results queued; they are sent at the next start",
                left,
                extra={"event": "mqtt_stop", "depth": left},
            )
        if socket_open and self.connected.is_set():
            publication = self.client.publish(self.publish.topic(STATUS), OFFLINE, qos=1, retain=True)
            deadline = time.monotonic() + 3.0
            while not publication.done() and time.monotonic() < deadline:
                if not self.client.loop(LOOP_TIMEOUT_S):
                    break
            self._attempt(self._take_acks)
            self.client.disconnect()
            self.client.loop(LOOP_TIMEOUT_S)
        self.connected.clear()

"""The one MQTT client of EcoLens: paho-mqtt 2.x behind one class, so connecting, TLS,
credentials, reconnecting, subscriptions and error reporting exist once.

Its shape follows aiomqtt's (one client, typed errors, reconnection as an explicit outer loop)
on threads instead of asyncio:

- ``connect()`` makes one attempt and raises ``ConnectFailed``; a broker that answers with a
  failure reason code is reported as ``ConnectRefused`` to ``on_error``.
- ``start()`` runs the network in a thread of its own: an explicit loop that connects, serves
  the connection until it drops, then waits ``core.backoff.Backoff`` (reset once connected) and
  connects again. paho's hidden reconnect is not used.
- A user that owns one thread for everything (the daemon's link) drives the same client with
  ``loop_once`` and its own loop instead of ``start()``.
- Subscriptions are remembered and made again on every (re)connect; messages are dispatched to
  the handler whose topic filter matches.
- ``publish_acked`` waits for the PUBACK (QoS 1) and raises ``PublishTimeout``.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from ecolens.core.backoff import Backoff
from ecolens.core.mqtt.errors import (
    ConnectFailed,
    ConnectRefused,
    MqttError,
    NotConnected,
    PublishFailed,
    PublishTimeout,
    SubscribeRefused,
)
from ecolens.core.mqtt.settings import BrokerSection, broker_where
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

log = logging.getLogger("ecolens.core.mqtt")

NETWORK_TICK_S = 1.0  # the network thread's select() timeout: paces keepalive only
STOP_WAIT_S = 10.0  # how long stop() waits for the network thread to say goodbye


@dataclass(frozen=True)
class Message:
    """One received message. ``topic`` is text; a topic that is not UTF-8 (only a broker that
    does not check could deliver one) is kept as the repr of its bytes."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int


@dataclass(frozen=True)
class Will:
    """What the broker publishes for this client when it vanishes without a DISCONNECT."""

    topic: str
    payload: str
    qos: int = 1
    retain: bool = True


Handler = Callable[[Message], None]


class Publication:
    """A message handed to the client. ``queued`` is False when paho refused it (``error`` says
    why); a QoS 1 message published while disconnected stays queued and goes out at reconnect."""

    def __init__(self, info: paho.MQTTMessageInfo) -> None:
        self._info = info
        self.mid: int = info.mid
        self.queued = info.rc in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN)
        self.connected = info.rc == paho.MQTT_ERR_SUCCESS
        self.error = None if self.queued else paho.error_string(info.rc)

    def done(self) -> bool:
        """Acknowledged (QoS 1) or written (QoS 0)."""
        try:
            return self._info.is_published()
        except (ValueError, RuntimeError):  # refused, or published while disconnected
            return False

    def wait(self, timeout: float) -> bool:
        """Block until ``done()`` or ``timeout`` seconds; False when it did not happen."""
        if not self.connected:
            return False
        try:
            self._info.wait_for_publish(timeout)
        except (ValueError, RuntimeError):
            return False
        return self.done()


def _log_error(error: MqttError) -> None:
    log.warning("%s", error)


class MqttClient:
    """One broker connection. Set the ``on_*`` hooks before connecting; they run on the thread
    that serves the network (``start()``'s, or the owner's for ``loop_once``)."""

    def __init__(
        self,
        settings: BrokerSection,
        client_id: str,
        *,
        mqtt5: bool = False,
        clean_session: bool | None = None,
        clean_start: bool | None = None,
        session_expiry_s: int | None = None,
        receive_maximum: int | None = None,
        manual_ack: bool = False,
        will: Will | None = None,
        max_inflight: int | None = None,
    ) -> None:
        """``clean_session`` is MQTT 3.1.1's (None: paho's default, a clean session);
        ``clean_start`` and the session properties are MQTT 5's (None: clean on the first
        connection only). With ``manual_ack`` a QoS 1 message is acknowledged by ``ack()``."""
        self.settings = settings
        self.client_id = client_id
        self.mqtt5 = mqtt5
        self.where = broker_where(settings)
        options: dict[str, Any] = {"manual_ack": manual_ack}
        if clean_session is not None:
            options["clean_session"] = clean_session
        self._paho = paho.Client(
            callback_api_version=paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
            **options,
        )
        self._apply_credentials()
        if will is not None:
            self._paho.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        if max_inflight is not None:
            self._paho.max_inflight_messages_set(max_inflight)
        self._clean_start: Any = paho.MQTT_CLEAN_START_FIRST_ONLY if clean_start is None else clean_start
        self._properties = self._connect_properties(session_expiry_s, receive_maximum)
        self._paho.on_connect = self._on_connect
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_subscribe = self._on_subscribe
        self._paho.on_publish = self._on_publish
        self._paho.on_message = self._on_message
        self.connected = threading.Event()
        self.backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self.on_connected: Callable[[bool], None] = lambda session_present: None
        self.on_disconnected: Callable[[str], None] = lambda reason: None
        self.on_subscribed: Callable[[list[int]], None] = lambda granted: None
        self.on_published: Callable[[int], None] = lambda mid: None
        self.on_error: Callable[[MqttError], None] = _log_error
        self._lock = threading.Lock()
        self._online = False  # CONNACK received; guarded by _lock with the subscriptions
        self._subscriptions: dict[str, int] = {}  # filter -> QoS, made again at every connect
        self._routes: list[tuple[str, Handler]] = []
        self._fallback: Handler | None = None
        self._configured = False
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # --- settings ----------------------------------------------------------------------------
    def _apply_credentials(self) -> None:
        settings = self.settings
        if settings.username is not None:
            self._paho.username_pw_set(settings.username, settings.password)
        if settings.tls:
            settings.check_files()
            self._paho.tls_set(
                ca_certs=str(settings.ca_file) if settings.ca_file else None,
                certfile=str(settings.cert_file) if settings.cert_file else None,
                keyfile=str(settings.key_file) if settings.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            self._paho.tls_insecure_set(settings.tls_insecure)

    def _connect_properties(self, session_expiry_s: int | None, receive_maximum: int | None) -> Any:
        if not self.mqtt5 or (session_expiry_s is None and receive_maximum is None):
            return None
        properties = Properties(PacketTypes.CONNECT)
        if session_expiry_s is not None:
            properties.SessionExpiryInterval = session_expiry_s
        if receive_maximum is not None:
            properties.ReceiveMaximum = receive_maximum
        return properties

    # --- subscriptions and dispatch ----------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe now if connected, and again after every reconnect."""
        with self._lock:
            self._subscriptions[topic_filter] = qos
            online = self._online
        if online:
            self._send_subscribe([(topic_filter, qos)])

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            known = self._subscriptions.pop(topic_filter, None) is not None
            online = self._online
        if known and online:
            self._paho.unsubscribe(topic_filter)

    def route(self, topic_filter: str, handler: Handler, ack_after: bool = False) -> None:
        """Messages whose topic matches ``topic_filter`` (a shared subscription's filter
        matches without its ``$share/<group>/``) go to ``handler``; the first match wins.
        ``ack_after`` (with ``manual_ack``): acknowledged as soon as ``handler`` returns."""
        if topic_filter.startswith("$share/"):
            topic_filter = topic_filter.split("/", 2)[2]
        if ack_after:
            handler = self._acking(handler)
        self._routes.append((topic_filter, handler))

    def _acking(self, handler: Handler) -> Handler:
        def handle(message: Message) -> None:
            try:
                handler(message)
            finally:
                if message.qos > 0:
                    self.ack(message.mid, message.qos)

        return handle

    def route_others(self, handler: Handler) -> None:
        """Messages that match no route (whatever a persistent session delivers)."""
        self._fallback = handler

    def _send_subscribe(self, subscriptions: Sequence[tuple[str, int]]) -> None:
        if self.mqtt5:
            self._paho.subscribe([(topic, SubscribeOptions(qos=qos)) for topic, qos in subscriptions])
        else:
            self._paho.subscribe(list(subscriptions))

    # --- paho callbacks ------------------------------------------------------------------------
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.on_error(ConnectRefused(self.where, int(reason.value), str(reason)))
            return
        self.backoff.reset()
        with self._lock:
            self._online = True
            subscriptions = list(self._subscriptions.items())
        if subscriptions:
            self._send_subscribe(subscriptions)
        self.connected.set()
        self.on_connected(bool(flags.session_present))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._lock:
            self._online = False
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected:
            self.on_disconnected(str(reason))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: list, properties: Any) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            self.on_error(SubscribeRefused(f"broker refused the subscriptions: {', '.join(refused)}"))
            return
        self.on_subscribed([int(reason.value) for reason in reasons])

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        # paho holds its message lock here: a hook must only hand the mid over.
        self.on_published(mid)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)
        received = Message(topic, message.payload, message.qos, bool(message.retain), message.mid)
        handler = next(
            (handler for pattern, handler in self._routes if paho.topic_matches_sub(pattern, topic)),
            self._fallback,
        )
        if handler is None:
            return
        try:
            handler(received)
        except Exception:  # one bad message must never stop the network
            log.exception("handling a message on %s failed", topic[:200])

    # --- connecting ----------------------------------------------------------------------------
    def connect(self) -> None:
        """One attempt: open the socket and send CONNECT (the CONNACK arrives on the network
        loop). Raises ConnectFailed."""
        try:
            if not self._configured:  # paho's connect() would make every reconnect a clean start
                self._paho.connect_async(
                    self.settings.host,
                    self.settings.port,
                    keepalive=self.settings.keepalive,
                    clean_start=self._clean_start,
                    properties=self._properties,
                )
                self._configured = True
            self._paho.reconnect()
        except (OSError, ValueError) as exc:  # ssl.SSLError, ConnectionRefusedError, gaierror ...
            raise ConnectFailed(self.where, exc) from exc

    def wait_connected(self, timeout: float) -> bool:
        return self.connected.wait(timeout)

    @property
    def socket_open(self) -> bool:
        return self._paho.socket() is not None

    # --- the network thread (start/stop) -------------------------------------------------------
    def start(self) -> MqttClient:
        """Serve the network from a thread: connect (unless ``connect()`` already did),
        reconnect with back-off after every failure or loss, until ``stop()``."""
        # Packets from other threads are queued and written by the network thread only.
        self._paho.on_socket_register_write = lambda *_: None
        self._thread = threading.Thread(target=self._serve, name=f"mqtt-{self.client_id}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._closing.is_set():
            if not self.socket_open:
                try:
                    self.connect()
                except MqttError as exc:
                    self.on_error(exc)
                    self._closing.wait(self.backoff.next())
                    continue
            while self._paho.loop(timeout=NETWORK_TICK_S) == paho.MQTT_ERR_SUCCESS:
                pass
            self.connected.clear()
            if not self._closing.is_set():
                self._closing.wait(self.backoff.next())

    def stop(self) -> None:
        """Say goodbye (DISCONNECT: no last will) and end the network thread. A persistent
        session stays on the broker."""
        self._closing.set()
        self._paho.disconnect()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            self._thread = None
        self.connected.clear()

    # --- driven by the owner's thread (no start()) ---------------------------------------------
    def loop_once(self, timeout: float, wake: socket.socket | None = None) -> bool:
        """One turn of the network (read, write, keepalive), sleeping in select() on the broker
        socket and ``wake`` together; False once the connection is gone."""
        sock = self._paho.socket()
        if sock is None:
            return False
        pending = getattr(sock, "pending", None)
        if pending and pending() > 0:
            timeout = 0.0  # TLS bytes already decrypted: select() would not report them
        readers = [sock] if wake is None else [sock, wake]
        writers = [sock] if self._paho.want_write() else []
        try:
            readable, writable, _ = select.select(readers, writers, [], timeout)
        except (OSError, ValueError):
            return False
        if wake is not None and wake in readable:
            with contextlib.suppress(BlockingIOError, OSError):
                wake.recv(4096)
        if (sock in readable or (pending and pending() > 0)) and self._paho.loop_read() != 0:
            return False
        if (writable or self._paho.want_write()) and self._paho.loop_write() != 0:
            return False
        return self._paho.loop_misc() == paho.MQTT_ERR_SUCCESS

    def loop(self, timeout: float) -> bool:
        """paho's own read/write/keepalive turn; False once the connection is gone."""
        return self._paho.loop(timeout=timeout) == paho.MQTT_ERR_SUCCESS

    def disconnect(self) -> None:
        self._paho.disconnect()

    # --- publishing ----------------------------------------------------------------------------
    def publish(self, topic: str, payload: str | bytes, qos: int = 0, retain: bool = False) -> Publication:
        return Publication(self._paho.publish(topic, payload, qos=qos, retain=retain))

    def publish_acked(
        self, topic: str, payload: str | bytes, *, retain: bool = False, timeout: float
    ) -> None:
        """QoS 1, returning once the broker acknowledged it."""
        publication = self.publish(topic, payload, qos=1, retain=retain)
        if not publication.queued:
            raise PublishFailed(f"publishing on {topic} failed: {publication.error}")
        if not publication.connected:
            raise NotConnected(f"not connected to {self.where}: {topic} not published")
        if not publication.wait(timeout):
            raise PublishTimeout(topic, timeout)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a message received with ``manual_ack`` (after it is safely stored)."""
        self._paho.ack(mid, qos)

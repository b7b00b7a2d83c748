"""Typed MQTT errors, each with the one user-facing sentence for its cause, so no user of the
client lists reason codes or formats socket errors itself. No paho here: the reason code
arrives as its number and paho's own name for it."""

from __future__ import annotations

import socket
import ssl

from ecolens.core.errors import EcoLensError

# CONNACK reason codes that mean the credentials are wrong: 4/5 in MQTT 3.1.1, 134/135 in MQTT 5
# (paho reports both protocols' codes with the MQTT 5 names).
CREDENTIAL_CODES = frozenset({4, 5, 134, 135})


class MqttError(EcoLensError):
    """Base of every MQTT failure: catch this one to retry or report any of them."""


class ConnectFailed(MqttError):
    """No connection reached the broker (refused, unknown host, TLS, timeout); ``cause`` is the
    socket-level error."""

    def __init__(self, where: str, cause: BaseException) -> None:
        super().__init__(describe_connect_error(cause, where))
        self.where = where
        self.cause = cause


class ConnectRefused(MqttError):
    """The broker answered the CONNECT with a failure reason code."""

    def __init__(self, where: str, code: int, name: str) -> None:
        self.where = where
        self.code = code
        self.reason = name + (" (check mqtt.username and mqtt.password)" if self.credentials else "")
        super().__init__(f"broker {where} refused the connection: {self.reason}")

    @property
    def credentials(self) -> bool:
        """Wrong user name or password (or not allowed): retrying alone will not help."""
        return self.code in CREDENTIAL_CODES


class NotConnected(MqttError):
    """An operation that needs a connection was asked for while there is none."""


class PublishFailed(MqttError):
    """paho refused to queue a message (its queue is full, the payload too large ...)."""


class PublishTimeout(MqttError):
    """A QoS 1 message was not acknowledged (PUBACK) in time."""

    def __init__(self, topic: str, timeout: float) -> None:
        super().__init__(f"the broker did not acknowledge {topic} within {timeout:g} s")
        self.topic = topic
        self.timeout = timeout


class SubscribeRefused(MqttError):
    """The broker refused one or more subscriptions (its ACL, a bad filter)."""


def describe_connect_error(exc: BaseException, where: str) -> str:
    """One clear line per kind of connection failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate check failed for {where}: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused (is the broker running and listening there?)"
    if isinstance(exc, socket.gaierror):
        return f"unknown broker host in {where}: {exc.strerror}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"connection to {where} timed out"
    return f"cannot connect to {where}: {exc}"

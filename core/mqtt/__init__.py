"""MQTT for every layer: ``settings`` (the [mqtt] section, broker URLs), ``errors`` (typed
failures with their user-facing sentence) and ``client`` (``MqttClient``, the one paho-mqtt
client). Only ``client`` imports paho: reading a config or a URL works without the extra."""

from __future__ import annotations

from ecolens.core.mqtt.errors import (
    ConnectFailed,
    ConnectRefused,
    MqttError,
    NotConnected,
    PublishFailed,
    PublishTimeout,
    SubscribeRefused,
)
from ecolens.core.mqtt.settings import BrokerSection, broker_overrides, broker_where, parse_broker_url

__all__ = [
    "BrokerSection",
    "ConnectFailed",
    "ConnectRefused",
    "MqttError",
    "NotConnected",
    "PublishFailed",
    "PublishTimeout",
    "SubscribeRefused",
    "broker_overrides",
    "broker_where",
    "parse_broker_url",
]

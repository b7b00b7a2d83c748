"""MQTT broker connection settings shared by the bin daemon and the fleet aggregator:
one place that knows URLs (``mqtt[s]://user:pass@host:port``), credentials and TLS."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ecolens.core.config import Section
from ecolens.core.errors import ConfigError
from pydantic import Field


class BrokerSection(Section):
    """[mqtt] connection settings."""

    host: str = Field("127.0.0.1", description="broker host name or address")
    port: int = Field(1883, ge=1, le=65535, description="1883 plain, 8883 usually TLS")
    username: str | None = None
    password: str | None = Field(None, description="prefer ECOLENS_MQTT__PASSWORD over the file")
    tls: bool = Field(False, description="connect with TLS")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's certificate")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client private key (mutual TLS)")
    tls_insecure: bool = Field(False, description="skip host-name check (testing only)")
    keepalive: int = Field(30, ge=5, le=3600, description="seconds between pings")
    client_id: str | None = Field(None, description="default: derived from the device id")
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    def check_files(self) -> None:
        """The TLS files named must exist: checked before connecting and by --validate-config
        (a typo in a path should not wait for the first connection to show)."""
        for name in ("ca_file", "cert_file", "key_file"):
            value = getattr(self, name)
            if value is not None and not Path(value).is_file():
                raise ConfigError(f"mqtt.{name}: file not found: {value}")


def parse_broker_url(url: str) -> dict[str, Any]:
    """``mqtts://user:pass@host:8883`` -> BrokerSection fields (only those the URL gives)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "mqtt://[::1": an unclosed IPv6 bracket
        raise ConfigError(f"broker URL is not valid ({exc}): {url!r}") from None
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ConfigError(f"broker URL must start with mqtt:// or mqtts://, got {url!r}")
    try:
        hostname = parts.hostname
    except ValueError as exc:
        raise ConfigError(f"broker URL is not valid ({exc}): {url!r}") from None
    if not hostname:
        raise ConfigError(f"broker URL has no host: {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"broker URL has an invalid port: {url!r}") from exc
    fields: dict[str, Any] = {
        "host": hostname,
        "tls": tls,
        "port": port or (8883 if tls else 1883),
    }
    if parts.username is not None:
        fields["username"] = unquote(parts.username)
    if parts.password is not None:
        fields["password"] = unquote(parts.password)
    return fields


def broker_overrides(url: str | None, section: str = "mqtt") -> dict[str, Any]:
    """A ``--broker URL`` flag as load_config overrides."""
    if not url:
        return {}
    return {f"{section}.{key}": value for key, value in parse_broker_url(url).items()}


def apply_connection_settings(client: Any, settings: BrokerSection) -> None:
    """Credentials, TLS and reconnect back-off on a paho-mqtt 2.x client."""
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        settings.check_files()
        client.tls_set(
            ca_certs=str(settings.ca_file) if settings.ca_file else None,
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.tls_insecure_set(settings.tls_insecure)
    # paho's own reconnect (clients on loop_start) backs off like core.backoff.Backoff: it keeps
    # floats, so 0.5 s stays 0.5 s.
    client.reconnect_delay_set(min_delay=settings.reconnect_min_s, max_delay=settings.reconnect_max_s)  # type: ignore[arg-type]


def make_client(settings: BrokerSection, client_id: str, *, mqtt5: bool = False, **options: Any) -> Any:
    """The one way to build a paho-mqtt 2.x client: callback API 2, then credentials and TLS."""
    import paho.mqtt.client as mqtt

    protocol = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        **options,
    )
    apply_connection_settings(client, settings)
    return client

"""MQTT broker connection settings shared by the bin daemon and the fleet aggregator:
one place that knows URLs (``mqtt[s]://user:pass@host:port``), credentials and TLS files.
No paho here: reading a config must not need the MQTT library."""

from __future__ import annotations

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


def broker_where(settings: BrokerSection) -> str:
    """``mqtts://host:8883``: how log lines and errors name the broker."""
    return f"{'mqtts' if settings.tls else 'mqtt'}://{settings.host}:{settings.port}"

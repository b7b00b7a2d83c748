"""Where a server listens, and the checks that keep it from serving an open endpoint on a LAN
or failing later on a broken TLS pair."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from ecolens.core.config import Section
from ecolens.core.errors import ConfigError
from pydantic import Field, model_validator


def is_loopback_host(host: str) -> bool:
    """True only for addresses no other machine can reach (a host name counts as reachable:
    it may resolve to a LAN address)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ListenSection(Section):
    """A listening socket with optional HTTPS; each server's section adds its own fields."""

    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address to bind; localhost by default, a LAN address needs API keys",
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port")
    tls_cert: Path | None = Field(None, description="PEM certificate (chain): serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    insecure: bool = Field(
        False,
        description="allow serving on a non-loopback address without API keys (not recommended)",
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> ListenSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.host)


def check_exposure(section: ListenSection, keys_enabled: bool, what: str, where: str) -> None:
    """Refuse to publish ``what`` on a LAN without keys, then check that HTTPS can start.
    ``where`` names the config section in the messages (``server``, ``http``)."""
    if not section.is_loopback and not keys_enabled and not section.insecure:
        raise ConfigError(
            f"refusing to serve {what} on {section.host} without API keys: anyone on the network "
            "could use it. Set [auth] key_hashes (see `ecolens serve --new-key`), bind "
            f"{where}.host to 127.0.0.1, or set {where}.insecure (--insecure) if the network is trusted"
        )
    if section.tls_cert is not None and section.tls_key is not None:
        for name in ("tls_cert", "tls_key"):
            path: Path = getattr(section, name)
            if not os.access(path, os.R_OK):
                raise ConfigError(f"{where}.{name}: cannot read {path}")
        check_tls_pair(section.tls_cert, section.tls_key)


def check_tls_pair(cert: Path, key: Path) -> None:
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"TLS certificate {cert} and key {key} are not a usable pair: {exc}") from None

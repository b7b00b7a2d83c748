"""[auth]: API keys (kept only as hashes) and the client-address allow-list."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from ecolens.edge.config import Section
from pydantic import Field, field_validator

KEY_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def _split_list(value: Any) -> Any:
    """Environment variables give one string: accept ``a,b`` as well as TOML ``["a", "b"]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KeysSection(Section):
    """Keys are compared by SHA-256 in constant time; plain keys are hashed on load. Shared by
    the API's [auth] and the fleet aggregator's [auth]."""

    key_hashes: list[str] = Field(
        default_factory=list,
        description='accepted keys as "sha256:<hex>" (print one with `ecolens serve --hash-key`)',
    )
    keys: list[str] = Field(
        default_factory=list,
        description="accepted keys in clear, for the secrets env file only "
        "(ECOLENS_AUTH__KEYS); hashed at start-up and never kept",
        repr=False,
    )

    @field_validator("key_hashes", "keys", mode="before")
    @classmethod
    def _lists_from_env(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("key_hashes")
    @classmethod
    def _check_hashes(cls, value: list[str]) -> list[str]:
        normalised = [item.strip().lower() for item in value]
        for item in normalised:
            if not KEY_HASH_PATTERN.match(item):
                raise ValueError(f'{item[:20]!r}... is not "sha256:" followed by 64 hex digits')
        return normalised

    @field_validator("keys")
    @classmethod
    def _check_keys(cls, value: list[str]) -> list[str]:
        for item in value:
            if len(item) < 16:
                raise ValueError("an API key must be at least 16 characters long")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.key_hashes or self.keys)


class AuthSection(KeysSection):
    """The API's keys plus a client-address allow-list."""

    allow_cidrs: list[str] = Field(
        default_factory=list,
        description="if set, only clients in these networks are served (others get 403)",
    )
    public_metrics: bool = Field(
        False, description="serve /metrics without a key (for a LAN Prometheus without tokens)"
    )

    @field_validator("allow_cidrs", mode="before")
    @classmethod
    def _cidrs_from_env(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("allow_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP network: {exc}") from exc
        return value

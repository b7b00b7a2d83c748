"""[auth]: API keys (kept only as hashes) and the client-address allow-list."""

from __future__ import annotations

import ipaddress
from typing import Any

from ecolens.core.http.keys import KeysSection, split_list
from pydantic import Field, field_validator


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
        return split_list(value)

    @field_validator("allow_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP network: {exc}") from exc
        return value

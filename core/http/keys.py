"""API keys: kept only as hashes, compared in constant time.

Keys are random tokens, so an unsalted SHA-256 is enough to make a leaked config useless to an
attacker (no dictionary applies); every stored hash is compared with ``hmac.compare_digest`` so
the time taken does not reveal which key, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from typing import Any

from ecolens.core.config import Section
from ecolens.core.http.errors import Unauthorized
from pydantic import Field, field_validator

KEY_BYTES = 32
KEY_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def hash_key(key: str) -> str:
    """The form stored in config: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(KEY_BYTES)


def split_list(value: Any) -> Any:
    """Environment variables give one string: accept ``a,b`` as well as TOML ``["a", "b"]``."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class KeysSection(Section):
    """[auth] keys, shared by the API and the fleet aggregator. Plain keys are hashed on load."""

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
        return split_list(value)

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


class KeyStore:
    """The accepted keys, as hashes only."""

    def __init__(self, key_hashes: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        hashes = {h.lower() for h in key_hashes} | {hash_key(k) for k in keys}
        self._digests = [bytes.fromhex(h.split(":", 1)[1]) for h in sorted(hashes)]

    @classmethod
    def from_settings(cls, section: KeysSection) -> KeyStore:
        return cls(section.key_hashes, section.keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> str:
        """Return a short, non-secret key id for logs and rate limits; raise 401 otherwise."""
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(presented.encode("utf-8")).digest()
        matched: bytes | None = None
        for stored in self._digests:  # no early exit: same work whichever key matches
            if hmac.compare_digest(digest, stored):
                matched = stored
        if matched is None:
            raise Unauthorized("invalid API key")
        return "key:" + matched.hex()[:8]


def presented_key(authorization: str | None, api_key_header: str | None) -> str | None:
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    if api_key_header:
        return api_key_header.strip() or None
    return None

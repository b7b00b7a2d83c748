"""API keys and the client allow-list.

Keys are random tokens, so an unsalted SHA-256 is enough to make a leaked config useless to an
attacker (no dictionary applies); every stored hash is compared with ``hmac.compare_digest`` so
the time taken does not reveal which key, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable

from ecolens.edge.api.errors import Forbidden, Unauthorized

KEY_BYTES = 32


def hash_key(key: str) -> str:
    """The form stored in config: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return secrets.token_urlsafe(KEY_BYTES)


class KeyStore:
    """The accepted keys, as hashes only."""

    def __init__(self, key_hashes: Iterable[str] = (), keys: Iterable[str] = ()) -> None:
        hashes = {h.lower() for h in key_hashes} | {hash_key(k) for k in keys}
        self._digests = [bytes.fromhex(h.split(":", 1)[1]) for h in sorted(hashes)]

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


class ClientFilter:
    """Allow-list of client networks; empty means everyone may connect."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def check(self, remote_addr: str | None) -> None:
        if not self._networks:
            return
        try:
            address = ipaddress.ip_address((remote_addr or "").split("%", 1)[0])
        except ValueError as exc:
            raise Forbidden("client address is not allowed") from exc
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not any(address in network for network in self._networks):
            raise Forbidden(f"client address {address} is not allowed")

"""The API's client-address allow-list (keys are core.http.keys, shared with the fleet)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ecolens.core.http.errors import Forbidden


class ClientFilter:
    """Allow-list of client networks; empty means everyone may connect."""

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        self._networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    @property
    def enabled(self) -> bool:
        """False when everyone may connect (then nobody needs to ask)."""
        return bool(self._networks)

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

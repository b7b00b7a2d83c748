"""The Host allow-list of the web pages (the fleet dashboard and labelling page, the bin page).

Why: a page on loopback without keys is open to any web page the operator's browser shows, once
that page's own name is made to resolve to 127.0.0.1 (DNS rebinding): the browser then sends
our server requests carrying the attacker's name in ``Host``. An IP address or ``localhost`` in
``Host`` cannot be an attacker's origin, nor can this machine's own names, so only those and
the names an operator lists (``allowed_hosts``: a DNS name, a reverse proxy's) are served;
anything else gets 421 and the project's JSON error body, with one log line."""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from ecolens.core.http.errors import error_body
from ecolens.core.http.exposure import ListenSection
from pydantic import Field, field_validator

log = logging.getLogger("ecolens.core.http")


class PageListenSection(ListenSection):
    """A web page's listening socket, with the host names it may be reached by."""

    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names the page is reached by besides IP addresses, localhost and this "
        "machine's own names (e.g. fleet.example.org); requests naming any other Host get 421",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _plain_names(cls, value: list[str]) -> list[str]:
        return [name.strip().lower().rstrip(".") for name in value if name.strip()]


def host_name(header: str) -> str:
    """``Host`` without its port, lower case: ``[::1]:8090`` -> ``::1``, ``Bin.Local.`` -> ``bin.local``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def known_names(listen: ListenSection) -> frozenset[str]:
    """localhost, the bound host, this machine's names and the configured ones."""
    names = {"localhost", socket.gethostname().lower(), socket.getfqdn().lower(), listen.host.lower()}
    names.update(getattr(listen, "allowed_hosts", []))
    return frozenset(name.rstrip(".") for name in names if name)


def host_allowed(header: str | None, names: Iterable[str]) -> bool:
    """True for no Host at all (HTTP/1.0: no browser sends that), an IP address, or a known name."""
    if header is None or not header.strip():
        return True
    name = host_name(header)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names


class KnownHostsOnly:
    """WSGI middleware: the app only sees requests whose Host passes :func:`host_allowed`."""

    def __init__(self, app: Callable[..., Any], listen: ListenSection, what: str) -> None:
        self.app = app
        self.names = known_names(listen)
        self.what = what

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        header = environ.get("HTTP_HOST")
        if host_allowed(header, self.names):
            return self.app(environ, start_response)
        shown = ascii(header[:100])
        log.warning(
            "%s: refused %s %s for Host %s (not this server's name: DNS rebinding?)",
            self.what,
            environ.get("REQUEST_METHOD", "?"),
            ascii(environ.get("PATH_INFO", "")[:200]),
            shown,
        )
        message = f"this server does not answer for Host {shown}; add it to allowed_hosts if it is yours"
        body = json.dumps(error_body("misdirected_request", message)).encode()
        start_response(
            "421 Misdirected Request",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

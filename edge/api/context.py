"""The per-request facts the middlewares and the endpoints share (``scope["ecolens"]``), and the
choice of the request id. Transport-free: a WSGI adapter can keep the same object."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id_from(supplied: str) -> str:
    """The client's ``X-Request-Id`` when it is a sane token, a new random one otherwise."""
    return supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex


@dataclass(slots=True)
class RequestInfo:
    """Opened by the request-id middleware; the key check sets ``client``, the endpoints add
    ``labels``, the response sets ``status``, the error mapping ``error``; metrics and the
    access log read them all once the answer is complete."""

    request_id: str
    remote: str | None  # the peer's address
    client: str  # the key's id once a key was checked, else the address ("unknown" without one)
    headers: dict[bytes, bytes]  # lower-case names; a repeated header keeps its last value
    started: float  # time.perf_counter() at arrival
    status: int = 500  # the answer's status once it started (499: the client left first)
    responded: bool = False  # the answer started: an error can no longer replace it
    error: str | None = None  # the error code the request ended with
    labels: list[str] = field(default_factory=list)

    def header(self, name: bytes) -> str | None:
        """A request header as text (``name`` in lower case), None when absent."""
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


def open_request(headers: dict[bytes, bytes], remote: str | None) -> RequestInfo:
    """A request's facts on arrival: its id (the client's when sane), its peer, its headers."""
    request_id = request_id_from(headers.get(b"x-request-id", b"").decode("latin-1"))
    return RequestInfo(request_id, remote, remote or "unknown", headers, time.perf_counter())

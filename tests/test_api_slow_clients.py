"""Slow clients cannot starve the API (the faults issue, item 4): against a real `ecolens serve`
process, 16 connections that announce a 100 kB body and send one byte every 2 s, and 16 that
send their headers a byte at a time, hold no worker: every /predict and /healthz meanwhile is
answered in under 2 s, the slow bodies get 408 at server.body_timeout and the slow headers are
cut off at server.header_timeout.

The default server only: the header deadline is its uvicorn protocol subclass's and the bodies
are read on its event loop. Under `--server flask` a slow client holds a gunicorn thread by
design (docs/api.md, "Slow clients and a threaded WSGI server"); its answers to the same
requests are checked against this server's in test_api_parity.py."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.api_server import KEY_HASHED, ApiServer, auth_config, bearer

SLOW = 16
BODY_TIMEOUT = 8.0
HEADER_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, reference_model: Path):
    api = ApiServer(
        tmp_path_factory.mktemp("api-slow"),
        {
            "model": {"path": str(reference_model)},
            "server": {
                "workers": 2,
                "threads": 1,
                "body_timeout": BODY_TIMEOUT,
                "header_timeout": HEADER_TIMEOUT,
            },
            "auth": auth_config(),
            "limits": {"rate": ""},
        },
    ).start()
    yield api
    api.stop()


class SlowBody(threading.Thread):
    """Announces Content-Length 100000 and sends one byte every ``interval`` seconds."""

    def __init__(self, port: int, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.reply = b""
        self.stop = threading.Event()

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            sock.sendall(
                (
                    "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
                    f"Authorization: Bearer {KEY_HASHED}\r\nContent-Length: 100000\r\n\r\n"
                ).encode()
            )
            sock.settimeout(self.interval)
            while not self.stop.is_set():
                try:
                    sock.sendall(b"\xff")
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                self.reply += chunk


class SlowHeaders(threading.Thread):
    """Sends a request line and headers one byte every ``interval`` seconds."""

    def __init__(self, port: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.closed_after: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 1000
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            sock.settimeout(self.interval)
            for byte in request:
                if self.stop.is_set():
                    return
                try:
                    sock.sendall(bytes([byte]))
                    if sock.recv(1024) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            self.closed_after = time.monotonic() - started


def test_slow_bodies_and_headers_do_not_starve_predict_or_healthz(server, eval_dir):
    jpeg = sorted((eval_dir / "plastic").glob("*.jpg"))[0].read_bytes()
    bodies = [SlowBody(server.port) for _ in range(SLOW)]
    headers = [SlowHeaders(server.port) for _ in range(SLOW)]
    for thread in bodies + headers:
        thread.start()
    time.sleep(1.0)  # every slow connection is open and holding its request
    latencies = []
    session = requests.Session()
    try:
        deadline = time.monotonic() + BODY_TIMEOUT - 2.0
        while time.monotonic() < deadline:
            for method, path, kwargs in (
                ("POST", "/predict", {"data": jpeg, "headers": {**bearer(), "Content-Type": "image/jpeg"}}),
                ("GET", "/healthz", {}),
            ):
                began = time.monotonic()
                response = session.request(method, server.url + path, timeout=10, **kwargs)
                latencies.append(time.monotonic() - began)
                assert response.status_code == 200, response.text
            time.sleep(0.1)
        assert len(latencies) >= 10
        # Starved, a request would wait for a slot that only a slow client's cut-off frees (the
        # header deadline, 4 s after these requests begin): half of it is no machine's speed.
        assert max(latencies) < HEADER_TIMEOUT / 2, sorted(latencies)[-5:]
        # the slow bodies are answered 408 once body_timeout has passed
        for thread in bodies:
            thread.join(timeout=BODY_TIMEOUT + 10)
        for thread in bodies:
            assert b" 408 " in thread.reply.split(b"\r\n", 1)[0], thread.reply[:200]
            assert b'"request_timeout"' in thread.reply
        # the slow headers were cut off at header_timeout (well before their 1000 bytes)
        for thread in headers:
            thread.join(timeout=HEADER_TIMEOUT + 10)
            assert thread.closed_after is not None
            assert HEADER_TIMEOUT - 0.5 <= thread.closed_after < HEADER_TIMEOUT + 5, thread.closed_after
    finally:
        for thread in bodies + headers:
            thread.stop.set()
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert "Traceback" not in server.log()

"""A throw-away local MQTT broker for `ecolens demo`: Mosquitto on a free port where it is
installed, otherwise the embedded amqtt broker (pure Python) in a background thread."""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import threading
import time
from pathlib import Path

from ecolens.bench.mosquitto import MosquittoBroker, free_port, mosquitto_binary
from ecolens.core.errors import EcoLensError, MissingDependencyError

log = logging.getLogger(__name__)


def wait_listening(port: int, timeout: float, alive=lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise EcoLensError(f"the local broker did not start listening on port {port}")


def mosquitto_installed() -> bool:
    try:
        mosquitto_binary()
    except RuntimeError:
        return False
    return True


class LocalBroker:
    """``with LocalBroker() as broker: broker.port``; ``kind`` is 'mosquitto' or 'amqtt'."""

    def __init__(self, prefer: str = "mosquitto") -> None:
        self.port = free_port()
        self.kind = ""
        self.prefer = prefer
        self._mosquitto: MosquittoBroker | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> LocalBroker:
        if self.prefer == "mosquitto" and mosquitto_installed():
            self._start_mosquitto()
        else:
            self._start_amqtt()
        return self

    def _start_mosquitto(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="ecolens-demo-broker-")
        self._mosquitto = MosquittoBroker(Path(self._workdir.name), self.port, persistence=False)
        try:
            self._mosquitto.start()
        except RuntimeError as exc:
            raise EcoLensError(f"the local Mosquitto did not start: {exc}") from exc
        self.kind = "mosquitto"

    def _start_amqtt(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise MissingDependencyError(
                "no MQTT broker for the demo: install Mosquitto (apt install mosquitto) or pip install amqtt"
            ) from exc
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                self._broker = Broker(config)
                await self._broker.start()

            try:
                loop.run_until_complete(boot())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._broker.shutdown())
            loop.close()

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._thread = threading.Thread(target=serve, name="amqtt", daemon=True)
        self._thread.start()
        if not started.wait(15):
            raise EcoLensError("embedded MQTT broker did not start within 15 s")
        if errors:
            raise EcoLensError(f"embedded MQTT broker failed to start: {errors[0]}")
        # Listening once Broker.start() returned: no probe connection (amqtt logs an ERROR for
        # a client that connects and sends nothing, which the demo then showed on success).
        self.kind = "amqtt"

    def stop(self) -> None:
        if self._mosquitto is not None:
            self._mosquitto.stop()
            self._mosquitto = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

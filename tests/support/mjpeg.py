"""A real MJPEG-over-HTTP camera stand-in (what many IP cameras serve), that can go down and
come back on the same port, for testing how live sources survive a dropped stream."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

BOUNDARY = "ecolensframe"


def camera_port() -> int:
    """A free port below the kernel's ephemeral range. While the camera is down, a client
    retrying ``connect()`` to a free ephemeral port can be given that same port as its source
    and connect to itself (TCP simultaneous open), so the camera could not come back on it."""
    low, _ = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def clip_frames(video: Path, limit: int = 60) -> list[bytes]:
    """The first ``limit`` frames of a video, JPEG-encoded once."""
    capture = cv2.VideoCapture(str(video))
    frames: list[bytes] = []
    while len(frames) < limit:
        ok, pixels = capture.read()
        if not ok:
            break
        frames.append(cv2.imencode(".jpg", pixels)[1].tobytes())
    capture.release()
    return frames


class MjpegCamera:
    """``start()`` serves ``/stream.mjpg`` (frames looped at ``fps``); ``stop()`` ends every open
    stream and closes the socket, like a camera losing power; ``start()`` again reuses the port."""

    def __init__(self, frames: list[bytes], port: int, fps: float = 30.0) -> None:
        self.frames, self.port, self.fps = frames, port, fps
        self.connections = 0
        self._down = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def _parts(self) -> Iterator[bytes]:
        index = 0
        while not self._down.is_set():
            jpeg = self.frames[index % len(self.frames)]
            yield (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                + jpeg
                + b"\r\n"
            )
            index += 1
            time.sleep(1.0 / self.fps)

    def _app(self, environ, start_response):
        self.connections += 1
        start_response("200 OK", [("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")])
        return self._parts()

    def start(self) -> MjpegCamera:
        from werkzeug.serving import make_server

        self._down.clear()
        deadline = time.monotonic() + 10
        while True:  # the old streams' sockets can hold the port for a moment after stop()
            try:
                self._server = make_server("127.0.0.1", self.port, self._app, threaded=True)
                break
            except (OSError, SystemExit):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._down.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

"""Whether the bin's camera delivers frames, as the bin tells the world on its retained status
topic: ``{"status": "online", "camera": "down", "camera_error": "...", "camera_since": "..."}``.

The frame loop writes it (source opened, dropped, reopened); the MQTT thread publishes it when
it changes. A bin without a camera still sends its queue and says why it sees nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from ecolens.core.contract import utc_timestamp
from ecolens.core.wire import CAMERA_DOWN, CAMERA_STARTING, CAMERA_UP, ONLINE


class CameraState:
    """Thread-safe; ``version`` grows at every change so readers can tell what is new."""

    def __init__(self, source_name: str) -> None:
        self.source_name = source_name
        self._lock = threading.Lock()
        self.state = CAMERA_STARTING
        self.error: str | None = None
        self.since = utc_timestamp()
        self.version = 0
        self.on_change: Callable[[], None] = lambda: None  # the MQTT link wakes up to publish

    def _set(self, state: str, error: str | None) -> None:
        with self._lock:
            if (state, error) == (self.state, self.error):
                return
            if state != self.state:
                self.since = utc_timestamp()
            self.state, self.error = state, error
            self.version += 1
        self.on_change()

    def up(self) -> None:
        self._set(CAMERA_UP, None)

    def down(self, error: str) -> None:
        self._set(CAMERA_DOWN, error)

    def status_payload(self) -> tuple[int, str]:
        """(version, the retained ``online`` status JSON with the camera state)."""
        with self._lock:
            body = {
                "status": ONLINE,
                "camera": self.state,
                "camera_error": self.error,
                "camera_since": self.since,
                "source": self.source_name,
            }
            return self.version, json.dumps(body)

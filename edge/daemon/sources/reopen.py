"""Keeps a live source running: a camera that is missing at start, disappears or a stream that
drops is (re)opened with exponential backoff for ever, without stopping the daemon, and its
state is reported (``camera`` in the bin's status) so a blind bin does not look healthy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ecolens.core.backoff import Backoff
from ecolens.edge.daemon.camera_state import CameraState
from ecolens.edge.daemon.sources.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)


class ReopeningSource:
    """Wraps a source: ``open`` tries ``attempts`` times then raises the last error (files and
    folders: a wrong path is a configuration error); ``open_until_up`` retries a live source
    for ever, as ``read`` does when it drops. ``stop`` (an Event) interrupts the waits."""

    def __init__(
        self,
        source: FrameSource,
        stop: threading.Event,
        reopen_min_s: float,
        reopen_max_s: float,
        attempts: int,
    ) -> None:
        self.source = source
        self.name = source.name
        self.live = source.live
        self.stop = stop
        self.backoff = Backoff(reopen_min_s, reopen_max_s)
        self.attempts = attempts
        self.reopens = 0
        self.heartbeat: Callable[[], None] = lambda: None
        self.camera = CameraState(source.name)

    def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` in short steps (the watchdog keeps seeing a live loop); True when
        stopping."""
        deadline = time.monotonic() + delay
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(1.0, left)):
                return True
            self.heartbeat()
        return self.stop.is_set()

    def open(self) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                self.source.open()
                self.backoff.reset()
                return
            except SourceError as exc:
                if attempt == self.attempts:
                    raise
                log.warning("%s (attempt %d of %d)", exc, attempt, self.attempts)
                if self._wait(self.backoff.next()):
                    raise

    def open_until_up(self) -> bool:
        """A live source at start: tried for ever with backoff (meanwhile the MQTT link sends
        what is queued and publishes the camera state); reported down after ``attempts``
        failures. False when stopped before it opened."""
        failures = 0
        while not self.stop.is_set():
            try:
                self.source.open()
                self.backoff.reset()
                self.camera.up()
                return True
            except SourceError as exc:
                failures += 1
                delay = self.backoff.next()
                if failures < self.attempts:
                    log.warning("%s (attempt %d of %d)", exc, failures, self.attempts)
                else:
                    self.camera.down(str(exc))
                    event = {"event": "camera_down"}
                    log.error("%s; camera down, retrying in %.1fs", exc, delay, extra=event)
                if self._wait(delay):
                    return False
        return False

    def read(self) -> Frame | None:
        while not self.stop.is_set():
            try:
                frame = self.source.read()
                self.backoff.reset()
                return frame
            except SourceError as exc:
                if not self.live:
                    raise
                log.error("%s; reopening", exc, extra={"event": "camera_down"})
                self.camera.down(str(exc))
                self._reopen()
        return None

    def _reopen(self) -> None:
        self.source.close()
        while not self._wait(self.backoff.next()):
            try:
                self.source.open()
                self.reopens += 1
                self.camera.up()
                log.info("%s reopened", self.name, extra={"event": "camera_up"})
                return
            except SourceError as exc:
                self.camera.down(str(exc))
                log.error("%s; retrying", exc)

    def close(self) -> None:
        self.source.close()

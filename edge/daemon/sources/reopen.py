"""Keeps a live source running: a camera that disappears or a stream that drops is reopened
with exponential backoff, without stopping the daemon."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ecolens.core.backoff import Backoff
from ecolens.edge.daemon.sources.base import Frame, FrameSource, SourceError

log = logging.getLogger(__name__)


class ReopeningSource:
    """Wraps a source: ``open`` tries ``attempts`` times then raises the last error; after that
    a failing live source is reopened forever. ``stop`` (an Event) interrupts the waits."""

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

    def read(self) -> Frame | None:
        while not self.stop.is_set():
            try:
                frame = self.source.read()
                self.backoff.reset()
                return frame
            except SourceError as exc:
                if not self.live:
                    raise
                log.error("%s; reopening", exc)
                self._reopen()
        return None

    def _reopen(self) -> None:
        self.source.close()
        while not self._wait(self.backoff.next()):
            try:
                self.source.open()
                self.reopens += 1
                log.info("%s reopened", self.name)
                return
            except SourceError as exc:
                log.error("%s; retrying", exc)

    def close(self) -> None:
        self.source.close()

"""Receives the bins' samples (``core.wire.sample_filter``) into a SampleStore, on the
aggregator's own connection (one per broker user): QoS 1 on its persistent session, so samples
sent while this server was down arrive when it is back."""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING

from ecolens.core.wire import device_of, sample_filter
from ecolens.fleet.payload import printable
from ecolens.fleet.samples.parse import SampleRejected
from ecolens.fleet.samples.store import SampleStore

if TYPE_CHECKING:
    from ecolens.core.mqtt.client import Message
    from ecolens.fleet.subscriber import Aggregator

log = logging.getLogger("ecolens.fleet.samples")


class SampleSubscriber:
    """Stores each sample message; counts what it stored and what it refused."""

    def __init__(self, prefix: str, store: SampleStore) -> None:
        self.prefix = prefix
        self.store = store
        self.stored = 0
        self.rejected = 0

    def attach(self, aggregator: Aggregator) -> SampleSubscriber:
        """Subscribe on the aggregator's connection (before it starts)."""
        aggregator.also_subscribe(sample_filter(self.prefix), 1, self._on_message)
        return self

    def _on_message(self, message: Message) -> None:
        """One line for a sample that is not stored; never an exception."""
        try:
            if self.store.add(device_of(message.topic), message.payload):
                self.stored += 1
        except SampleRejected as exc:
            self.rejected += 1
            log.warning(
                "sample on %s rejected: %s", printable(message.topic[:200]), printable(str(exc)[:300])
            )
        except (OSError, sqlite3.Error) as exc:  # a full disk, a removed folder
            self.rejected += 1
            log.error("sample on %s not stored: %s", printable(message.topic[:200]), printable(exc))

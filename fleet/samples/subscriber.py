"""Receives the bins' samples (``core.wire.sample_filter``) into a SampleStore: QoS 1 on a
persistent session, so samples sent while this server was down arrive when it is back."""

from __future__ import annotations

import logging
import secrets
import sqlite3

from ecolens.core.mqtt import BrokerSection
from ecolens.core.mqtt.client import Message, MqttClient
from ecolens.core.wire import device_of, sample_filter
from ecolens.fleet.payload import printable
from ecolens.fleet.samples.parse import SampleRejected
from ecolens.fleet.samples.store import SampleStore

log = logging.getLogger("ecolens.fleet.samples")


class SampleSubscriber:
    """Stores each sample message; counts what it stored and what it refused."""

    def __init__(
        self, broker: BrokerSection, prefix: str, store: SampleStore, client_id: str | None = None
    ) -> None:
        self.prefix = prefix
        self.store = store
        self.stored = 0
        self.rejected = 0
        # the id `ecolens aggregate` keeps (fleet.client_ids); a fresh one when none is given
        self.client = MqttClient(
            broker, client_id or f"ecolens-samples-{secrets.token_hex(16)}", clean_session=False
        )
        self.client.subscribe(sample_filter(prefix), qos=1)
        self.client.route(sample_filter(prefix), self._on_message)

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

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()

"""A re-sign and a push at the same moment: the aggregator's re-sign has read a bin's current
manifest (due before it expires) when `ecolens rollout` pushes a newer one. With a real Mosquitto
and a real database (SQLite and PostgreSQL), the re-sign is held inside its publish; the push
must wait for it and publish after it, so the broker keeps the newer manifest for a bin that is
offline, and the database records it as current. Without the manifests' lock the push went out
first and the re-sign published the older serial over it."""

from __future__ import annotations

import threading
import time

from ecolens.core.mqtt import BrokerSection
from ecolens.core.rollout import (
    CHUNK_BYTES,
    Manifest,
    generate_keypair,
    load_private_key,
    load_public_key,
    verify,
)
from ecolens.core.wire import manifest_topic
from ecolens.fleet.rollout.current import current_manifest, refresh_manifests
from ecolens.fleet.rollout.manifest_lock import manifests_locked, write_current
from ecolens.fleet.rollout.publish import Connection, publish_signed
from ecolens.fleet.storage import open_database

from tests.support.daemon_helpers import Recorder

TTL_S = 3600.0


def manifest(serial: int, version: str, expires_ms: int) -> Manifest:
    return Manifest(
        device_id="bin-01", serial=serial, action="install", name="m", version=version, sha256="a" * 64,
        size=10, chunks=1, chunk_bytes=CHUNK_BYTES, fetch="ecolens/models/" + "a" * 64,
        issued="2026-12-07T00:00:00Z", rollout_id=f"r{serial}", expires_ms=expires_ms,
    )  # fmt: skip


class HeldConnection(Connection):
    """A real connection whose first publish waits until released: the re-sign caught between
    reading the current manifest and publishing it."""

    def __init__(self, broker: BrokerSection, reached: threading.Event, release: threading.Event) -> None:
        super().__init__(broker, "held")
        self.reached, self.release = reached, release

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        self.reached.set()
        assert self.release.wait(30)
        super().publish(topic, payload, retain)


def test_a_push_during_a_re_sign_is_published_after_it(mosquitto, database_url):
    pem, public = generate_keypair()
    key = load_private_key(pem)
    broker = BrokerSection(host=mosquitto.host, port=mosquitto.port)
    now_ms = int(time.time() * 1000)
    database = open_database(database_url)
    with manifests_locked(database) as tx:
        write_current(tx, [manifest(1, "1.0.0", now_ms + 60_000)])  # due: expires within TTL/2
    reached, release = threading.Event(), threading.Event()
    refreshed: list = []

    def re_sign() -> None:
        own = open_database(database_url, migrate=False)
        try:
            opener = lambda name: HeldConnection(broker, reached, release)  # noqa: E731
            refreshed.extend(refresh_manifests(own, opener, "ecolens", key, TTL_S, now_ms))
        finally:
            own.close()

    aggregator = threading.Thread(target=re_sign)
    aggregator.start()
    assert reached.wait(30)  # the re-sign holds the lock and is about to publish serial 1
    pushed: list = []

    def push() -> None:
        connection = Connection(broker, "push")
        try:
            newer = manifest(2, "2.0.0", now_ms + int(TTL_S * 1000))
            pushed.extend(publish_signed(connection, "ecolens", ["bin-01"], key, lambda d: newer, database))
        finally:
            connection.close()

    operator = threading.Thread(target=push)
    operator.start()
    time.sleep(1.0)
    assert not pushed, "the push went out while the re-sign held the manifests"
    release.set()
    aggregator.join(30)
    operator.join(60)
    assert [m.serial for m in refreshed] == [1] and [m.serial for m in pushed] == [2]

    # What a bin that was offline throughout finds on the broker, and what the fleet records.
    retained = Recorder(mosquitto.port, [manifest_topic("ecolens", "bin-01")], client_id="late-bin")
    try:
        assert retained.wait(lambda: bool(retained.on(manifest_topic("ecolens", "bin-01"))), 10)
        got = verify(retained.on(manifest_topic("ecolens", "bin-01"))[-1], load_public_key(public))
    finally:
        retained.close()
    assert got.serial == 2 and got.version == "2.0.0"
    assert current_manifest(database, "bin-01").serial == 2
    database.close()

"""Two refusals docs/field-adaptation.md promises against a compromised broker, on a real bin
behind the shipped broker configuration (the attacker is `ecolens-rollout`): a manifest signed
for another bin, moved onto this bin's topic; and a forged chunk of exactly the signed length
(so it is kept and assembled) whose bytes differ. Either way the running model stays, and the
genuine chunk still installs afterwards."""

from __future__ import annotations

import signal
import time

import pytest
from ecolens.core.classifier import file_sha256
from ecolens.core.rollout import CHUNK_BYTES, load_private_key, sign
from ecolens.core.wire import chunk_topic, manifest_topic

from tests.test_rollout import (
    BASE,
    V1,
    States,
    keys,
    manifest_for,
    publish,
    publish_chunks,
    start_bin,
    variant,
)

pytest.importorskip("cryptography")
__all__ = ["keys"]  # the fixture, used by name below


def test_another_bins_manifest_and_a_same_length_forged_chunk_are_refused(
    tmp_path, fleet_broker, reference_model, keys
):
    key, public = keys
    private = load_private_key(key.read_bytes())
    newer = variant(reference_model, tmp_path / "v101.tflite", V1)
    states = States(fleet_broker)
    daemon = start_bin(tmp_path, fleet_broker.url_for("bin-01"), reference_model, "bin-01", public)
    topic = manifest_topic("ecolens", "bin-01")
    try:
        states.wait_for("bin-01", lambda s: s["running"]["version"] == BASE)

        # signed, valid, newer, and for bin-02: moved onto bin-01's topic, it is refused
        publish_chunks(fleet_broker, newer)
        n = states.count("bin-01")
        foreign = manifest_for(newer, "bin-02", int(time.time() * 1000), V1)
        publish(fleet_broker, topic, sign(foreign, private))
        states.refused("bin-01", n, "is for 'bin-02', not this bin")
        assert states.last("bin-01")["running"]["version"] == BASE

        # the chunk has the signed length, so it is assembled, but its bytes are not the model's
        body = manifest_for(newer, "bin-01", int(time.time() * 1000) + 1, V1)
        chunk = chunk_topic("ecolens", body.sha256, 0)
        genuine = newer.read_bytes()[:CHUNK_BYTES]
        forged = bytes(reversed(genuine))
        assert len(forged) == body.chunk_bytes and forged != genuine
        publish(fleet_broker, chunk, forged)
        n = states.count("bin-01")
        publish(fleet_broker, topic, sign(body, private))
        states.refused("bin-01", n, "does not match the manifest's size and sha256")
        assert states.last("bin-01")["running"]["version"] == BASE
        assert daemon.poll() is None

        # the genuine model, signed anew, still installs
        publish(fleet_broker, chunk, genuine)
        again = manifest_for(newer, "bin-01", int(time.time() * 1000) + 2, V1)
        publish(fleet_broker, topic, sign(again, private))
        installed = states.wait_for("bin-01", lambda s: s["running"]["version"] == V1)
        assert installed["running"]["sha256"] == file_sha256(newer)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        states.recorder.close()

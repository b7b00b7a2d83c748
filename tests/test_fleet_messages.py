"""What the aggregator does with each kind of message a bin (or anyone) may publish."""

from __future__ import annotations

import json

import pytest
from ecolens.core.contract import make_result
from ecolens.core.wire import split_topic, subscriptions
from ecolens.fleet.messages import parse_message
from ecolens.fleet.storage.store import Rejected, StatusUpdate, StoredResult

MODEL = {"name": "ecolens-plastic-lite0", "version": "1.0", "sha256": "a" * 64}
NOW_MS = 1_700_000_000_000


def result(**changes) -> dict:
    base = make_result(
        ("non_plastic", "plastic"),
        (0.2, 0.8),
        MODEL,
        21.5,
        device_id="bin-7",
        event_id="ev-1",
        frames=2,
    )
    base.update(changes)
    return base


def parse(topic: str, payload) -> object:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return parse_message("ecolens", topic, data, NOW_MS)


def test_a_valid_result_is_flattened_for_queries():
    stored = parse("ecolens/bin-7/result", result(timestamp="2024-05-01T10:30:00.250Z"))
    assert isinstance(stored, StoredResult)
    assert (stored.event_id, stored.device_id, stored.label) == ("ev-1", "bin-7", "plastic")
    assert stored.seen_ms == 1714559400250
    assert stored.received_ms == NOW_MS
    assert stored.confidence == 0.8 and stored.frames == 2 and stored.uncertain is False
    assert stored.model_sha256 == "a" * 64
    assert json.loads(stored.payload)["event_id"] == "ev-1"


def test_device_id_comes_from_the_topic_when_the_payload_has_none():
    payload = result()
    del payload["device_id"]
    stored = parse("ecolens/bin-9/result", payload)
    assert isinstance(stored, StoredResult) and stored.device_id == "bin-9"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe not json", "not UTF-8 text"),
        (b"{broken", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (result(confidence=1.5), "confidence"),
        (result(timestamp="yesterday"), "timestamp"),
        (result(contract_version="2.0"), "contract_version 2.0 is not readable"),
        (result(contract_version=1.0), "contract_version"),
        ({k: v for k, v in result().items() if k != "event_id"}, "no event_id"),
        (result(device_id="bin-8"), "does not match topic"),
        (result(label="glass"), "label is not one of scores"),
    ],
)
def test_malformed_results_are_rejected_with_a_reason(payload, reason):
    rejected = parse("ecolens/bin-7/result", payload)
    assert isinstance(rejected, Rejected)
    assert reason in rejected.reason
    assert rejected.topic == "ecolens/bin-7/result"


@pytest.mark.parametrize(
    ("payload", "status"),
    [(b"online", "online"), (b"offline", "offline"), (b" Offline\n", "offline"),
     (b'{"status": "online", "ip": "10.0.0.7"}', "online")],
)  # fmt: skip
def test_status_messages(payload, status):
    update = parse("ecolens/bin-7/status", payload)
    assert update == StatusUpdate("bin-7", status, NOW_MS)


@pytest.mark.parametrize("payload", [b"sleeping", b"", b"\xff", b'{"status": 1}', b"{nope"])
def test_bad_status_is_rejected(payload):
    assert isinstance(parse("ecolens/bin-7/status", payload), Rejected)


@pytest.mark.parametrize(
    "topic", ["ecolens/bin-7/other", "other/bin-7/result", "ecolens/result", "ecolens//result"]
)
def test_unexpected_topics_are_rejected(topic):
    assert parse(topic, result()).reason == "unexpected topic"


def test_topics_with_a_multi_level_prefix():
    assert split_topic("site/a", "site/a/bin-1/result") == ("bin-1", "result")
    assert split_topic("site/a", "site/b/bin-1/result") is None


def test_results_are_shared_but_status_is_not():
    assert subscriptions("ecolens", "fleet") == [
        "$share/fleet/ecolens/+/result",
        "ecolens/+/status",
    ]
    assert subscriptions("ecolens", None) == ["ecolens/+/result", "ecolens/+/status"]


def test_camera_reason_and_since_are_kept_and_anything_malformed_is_left_out():
    down = {"status": "online", "camera": "down", "camera_error": "cannot open /dev/video0",
            "camera_since": "2026-05-01T10:00:00Z"}  # fmt: skip
    parsed = parse_message("ecolens", "ecolens/bin-1/status", json.dumps(down).encode(), 5)
    assert isinstance(parsed, StatusUpdate)
    assert (parsed.camera, parsed.camera_error, parsed.camera_since_ms) == (
        "down", "cannot open /dev/video0", 1777629600000
    )  # fmt: skip
    odd = {**down, "camera_error": {"nested": 1}, "camera_since": "2026-02-30T10:00:00Z"}
    parsed = parse_message("ecolens", "ecolens/bin-1/status", json.dumps(odd).encode(), 5)
    assert (parsed.camera, parsed.camera_error, parsed.camera_since_ms) == ("down", None, None)
    long = {**down, "camera_error": "x" * 1000}
    parsed = parse_message("ecolens", "ecolens/bin-1/status", json.dumps(long).encode(), 5)
    assert parsed.camera_error == "x" * 300  # kept short
    sideways = {**down, "camera": "sideways"}
    parsed = parse_message("ecolens", "ecolens/bin-1/status", json.dumps(sideways).encode(), 5)
    assert (parsed.status, parsed.camera, parsed.camera_error) == ("online", None, None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"[1]", "not a JSON object"), (b'{"queue_depth": -1}', "out of range"),
     (b'{"queue_depth": 2.5}', "whole number"), (b'{"cpu_percent": true}', "not a number"),
     (b'{"rss_mb": 1e400}', "out of range"), (b"\xff", "not UTF-8"),
     (b'{"a":' * 20 + b"1" + b"}" * 20, "deeper")],
)  # fmt: skip
def test_hostile_stats_are_refused_with_a_reason(payload, reason):
    from ecolens.fleet.binstats import parse_stats
    from ecolens.fleet.payload import PayloadError

    with pytest.raises(PayloadError, match=reason):
        parse_stats("bin-1", payload, 0)
    stats = parse_stats("bin-1", b'{"queue_depth": 3, "inference_ms_p95": 41.5, "extra": "ignored"}', 7)
    assert (stats.queue_depth, stats.inference_ms_p95, stats.cpu_percent, stats.received_ms) == (
        3,
        41.5,
        None,
        7,
    )

"""Property-based fuzzing of everything the fleet server and the bins parse from the broker
(hypothesis, derandomized so a failure reproduces): result and status messages, samples,
retained model states and rollout manifests. Anyone who may publish on the broker can send
these, so whatever comes must end as a stored row or a stated refusal, never as an exception
that stops a subscriber; and what the parsers accept or refuse must be storable in a real
SQLite and a real PostgreSQL (a NUL, a lone surrogate or an out-of-range integer would fail the
whole batch it came in)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from typing import Any

import pytest
from ecolens.core.rollout import RolloutError, generate_keypair, load_public_key, verify
from ecolens.fleet.messages import parse_message
from ecolens.fleet.rollout.states import well_formed_state
from ecolens.fleet.samples.parse import SampleRejected, parse_sample
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import Rejected, ResultStore, StatusUpdate, StoredResult
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=600,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
GOOD = {
    "contract_version": "1.0",
    "label": "plastic",
    "confidence": 0.9,
    "scores": {"plastic": 0.9, "non_plastic": 0.1},
    "uncertain": False,
    "model": {"name": "ecolens-plastic-lite0", "version": "2.1.0", "sha256": "a" * 64},
    "inference_ms": 3.0,
    "timestamp": "2026-11-27T10:00:00Z",
    "device_id": "bin-1",
    "event_id": "e1",
    "seq": 5,
    "frames": 2,
}
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["\x00", "\ud800", "9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z", "x" * 5000]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
FIELDS = st.sampled_from([*GOOD, "model.name", "model.version", "model.sha256", "scores.plastic", "extra"])
HOSTILE_TEXT = st.text(max_size=40) | st.sampled_from(["\x00", "a\ud800b", "\u202e", "x" * 5000, "😀" * 300])
UNIT = st.floats(0, 1) | st.sampled_from([0.0, 1.0, 5e-324])
# values of the right type (so the contract lets many through) with hostile contents
TYPED = {
    "label": HOSTILE_TEXT,
    "event_id": HOSTILE_TEXT,
    "device_id": st.just("bin-1"),
    "model.name": HOSTILE_TEXT,
    "model.version": HOSTILE_TEXT,
    "source": HOSTILE_TEXT,
    "confidence": UNIT,
    "scores.plastic": UNIT,
    "inference_ms": st.floats(0, allow_infinity=False) | st.just(1.7976931348623157e308),
    "seq": st.integers(1, 2**63 - 1),
    "frames": st.integers(1, 2**70),
    "timestamp": st.sampled_from(
        ["9999-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z"]
    ),
}
MUTATIONS = st.lists(
    st.tuples(FIELDS, JSON_VALUES)
    | st.sampled_from(sorted(TYPED)).flatmap(lambda f: st.tuples(st.just(f), TYPED[f])),
    min_size=1,
    max_size=3,
)


def mutated(mutations: list[tuple[str, Any]]) -> bytes:
    """A valid result with some fields replaced (NaN and lone surrogates kept as Python writes them)."""
    result = copy.deepcopy(GOOD)
    for field, value in mutations:
        parent, _, child = field.rpartition(".")
        target = result.get(parent) if parent else result
        if isinstance(target, dict):
            target[child] = value
    return json.dumps(result).encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fleet.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database()
    database = open_database(url)
    yield ResultStore(database)
    database.close()


def store_outcome(store: ResultStore, outcome: Any) -> None:
    store.write(
        results=[outcome] if isinstance(outcome, StoredResult) else [],
        statuses=[outcome] if isinstance(outcome, StatusUpdate) else [],
        rejected=[outcome] if isinstance(outcome, Rejected) else [],
    )


@FUZZ
@example(mutations=[("event_id", "\x00")], kind="result")
@example(mutations=[("seq", 2**64)], kind="result")
@example(mutations=[("confidence", float("nan"))], kind="result")
@example(mutations=[("label", "\ud800")], kind="status")
@given(mutations=MUTATIONS, kind=st.sampled_from(["result", "status"]))
def test_mutated_results_are_stored_or_refused(store: ResultStore, mutations, kind) -> None:
    outcome = parse_message("ecolens", f"ecolens/bin-1/{kind}", mutated(mutations), 1_764_000_000_000)
    assert isinstance(outcome, (StoredResult, StatusUpdate, Rejected))
    if isinstance(outcome, StoredResult):
        assert 0.0 <= outcome.confidence <= 1.0 and outcome.device_id == "bin-1"
    store_outcome(store, outcome)


@FUZZ
@example(payload=b"\xff\xfe", device="bin-1")
@example(payload=b"[" * 5000, device="bin-1")
@example(payload=b"{}", device="\x00")
@given(payload=st.binary(max_size=300), device=st.text(max_size=30))
def test_any_bytes_on_any_bin_topic_are_stored_or_refused(store: ResultStore, payload, device) -> None:
    for kind in ("result", "status"):
        outcome = parse_message("ecolens", f"ecolens/{device}/{kind}", payload, 1_764_000_000_000)
        assert isinstance(outcome, (StoredResult, StatusUpdate, Rejected))
        store_outcome(store, outcome)


PUBLIC_KEY = load_public_key(generate_keypair()[1])


@FUZZ
@given(value=JSON_VALUES, raw=st.binary(max_size=200))
def test_samples_states_and_manifests_are_parsed_or_refused(value, raw) -> None:
    as_json = json.dumps(value).encode("utf-8", "surrogatepass")
    envelope = json.dumps({"manifest": base64.b64encode(as_json).decode(), "signature": "AAAA"}).encode()
    for payload in (as_json, raw, envelope):
        with contextlib.suppress(SampleRejected):
            parse_sample("bin-1", payload)
        state = well_formed_state("ecolens", "ecolens/bin-1/model/state", payload)
        assert state is None or state.get("device_id", "bin-1") == "bin-1"
        with pytest.raises(RolloutError):
            verify(payload, PUBLIC_KEY)  # nothing here is signed by the key

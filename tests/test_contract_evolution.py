"""Contract 1.x evolves without lock-step upgrades (docs/contract.md): every reader (the
aggregator, Home Assistant's templates, the schema published for clients) reads a bin one minor
version ahead or behind and keeps what it knows; a 2.0 result is refused, counted, and logged
once per bin."""

from __future__ import annotations

import json
import logging

import pytest
from ecolens.bench.postgres import wait_until
from ecolens.core.contract import CONTRACT_VERSION, make_result, result_schema, validate_result
from ecolens.core.wire import RejectionKind
from ecolens.edge.api.openapi import openapi_document
from ecolens.fleet.messages import parse_message
from ecolens.fleet.storage import open_database
from ecolens.fleet.storage.store import Rejected, StoredResult

from tests.test_fleet_ingest import aggregator, publish_raw
from tests.test_homeassistant import announced, render

LABELS = ("non_plastic", "plastic")
MODEL = {"name": "ecolens-plastic-lite0", "version": "2.1.0", "sha256": "c" * 64}


def result(device_id: str, event_id: str, **changes: object) -> dict:
    base = make_result(LABELS, (0.3, 0.7), MODEL, 9.5, device_id=device_id, event_id=event_id, seq=1)
    base.update(changes)
    return base


def newer(device_id: str = "bin-new", event_id: str = "e-new") -> dict:
    """What a bin one minor version ahead writes: 1.1 with a field this release does not know,
    in the result and in its model."""
    payload = result(device_id, event_id, contract_version="1.1", bin_temperature_c=31.5)
    payload["model"] = dict(payload["model"], runtime="litert-2.0")
    return payload


def test_this_release_writes_1_0_and_reads_any_1_x():
    assert CONTRACT_VERSION == "1.0"
    validate_result(newer())
    validate_result(result("bin-old", "e", contract_version="1.0"))
    validate_result(result("bin-far", "e", contract_version="1.27"))
    for unreadable in ("2.0", "1", "1.x", "01.0", "0.9"):
        with pytest.raises(Exception, match="does not match"):
            validate_result(result("bin", "e", contract_version=unreadable))


@pytest.mark.parametrize("payload", [newer(), result("bin-new", "e-new", contract_version="1.0")])
def test_the_aggregator_stores_what_it_knows_and_keeps_the_rest(payload):
    stored = parse_message("ecolens", "ecolens/bin-new/result", json.dumps(payload).encode(), 1)
    assert isinstance(stored, StoredResult), stored
    assert (stored.label, stored.model_version, stored.seq) == ("plastic", "2.1.0", 1)
    assert json.loads(stored.payload) == payload  # the unknown fields too, for a later reader


def test_a_2_0_result_is_refused_with_its_own_kind():
    payload = result("bin-next", "e-next", contract_version="2.0")
    refused = parse_message("ecolens", "ecolens/bin-next/result", json.dumps(payload).encode(), 1)
    assert isinstance(refused, Rejected)
    assert refused.kind == RejectionKind.CONTRACT_VERSION.value
    assert refused.reason.startswith("contract_version 2.0 is not readable here")


def test_home_assistant_templates_read_a_newer_minor_version():
    payload = json.dumps(newer(device_id="bin-7")).encode()
    label = next(c for c in announced().values() if c["unique_id"].endswith("_label"))
    assert render(label["value_template"], payload) == "plastic"
    attributes = json.loads(render(label["json_attributes_template"], payload))
    assert attributes["confidence"] == 0.7 and attributes["event_id"] == "e-new"


def test_the_published_schema_is_the_readers_schema():
    schema = openapi_document(max_batch=4, auth=False)["components"]["schemas"]["Result"]
    assert schema["properties"] == result_schema()["properties"]
    assert "additionalProperties" not in schema


def test_bins_a_minor_version_ahead_and_behind_are_both_stored(mosquitto, tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    agg = aggregator(mosquitto, url, "agg-versions", batch_wait_ms=0).start()
    future = [result("bin-next", f"e-next-{i}", contract_version="2.0") for i in range(3)]
    try:
        with caplog.at_level(logging.WARNING, logger="ecolens.fleet.subscriber"):
            publish_raw(
                mosquitto,
                [
                    ("ecolens/bin-new/result", json.dumps(newer()).encode()),
                    ("ecolens/bin-old/result", json.dumps(result("bin-old", "e-old")).encode()),
                    *[("ecolens/bin-next/result", json.dumps(p).encode()) for p in future],
                ],
            )
            assert wait_until(lambda: agg.stats.snapshot()["rejected"] == 3, timeout=20)
            assert wait_until(lambda: agg.stats.snapshot()["stored"] == 2, timeout=20)
        stats = agg.stats.snapshot()
    finally:
        agg.stop()
    assert stats["rejected_by_reason"] == {"contract_version": 3}
    database = open_database(url, migrate=False)
    try:
        rows = dict(database.query("SELECT device_id, payload FROM results"))
        reasons = [row[0] for row in database.query("SELECT reason FROM rejected")]
    finally:
        database.close()
    assert sorted(rows) == ["bin-new", "bin-old"]
    assert json.loads(rows["bin-new"])["bin_temperature_c"] == 31.5
    assert len(reasons) == 3 and all(r.startswith("contract_version 2.0 is not readable") for r in reasons)
    lines = [r.getMessage() for r in caplog.records if "bin-next" in r.getMessage()]
    assert len(lines) == 1 and "upgrade the aggregator" in lines[0], lines

"""Home Assistant discovery as a 2026 Home Assistant reads it: every retained config the daemon
publishes to a real Mosquitto passes HA's documented discovery schema, and its templates,
rendered with Jinja2 (HA's template engine) on the real result and stats messages, give the
states HA would show."""

from __future__ import annotations

import json

import jsonschema
import pytest
from ecolens.edge.daemon.app import Daemon
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection
from ecolens.edge.daemon.homeassistant import discovery_messages
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.support import ha_discovery
from tests.support.daemon_helpers import Recorder, clip_path
from tests.test_daemon_mqtt import daemon_config

LABELS = ("non_plastic", "plastic")


def render(template: str, payload: bytes) -> str:
    """What HA does with value_template: the payload as value and, when JSON, value_json."""
    environment = ImmutableSandboxedEnvironment()
    text = payload.decode()
    return environment.from_string(template).render(value=text, value_json=json.loads(text)).strip()


def announced(section=None, device_id="bin-7") -> dict[str, dict]:
    messages = discovery_messages(
        section or HomeAssistantSection(), PublishSection(device_id=device_id), LABELS
    )
    return {topic: json.loads(payload) for topic, payload in messages}


def test_every_config_passes_home_assistants_schema():
    configs = announced()
    components = {ha_discovery.check(topic, config) for topic, config in configs.items()}
    assert components == {"sensor", "binary_sensor"}
    by_key = {config["unique_id"].rsplit("bin-7_", 1)[1]: config for config in configs.values()}
    assert set(by_key) == {
        "camera",
        "label",
        "confidence",
        "items",
        "plastic_items",
        "plastic_share",
        "queue",
        "connectivity",
    }
    label = by_key["label"]
    assert label["device_class"] == "enum" and label["options"] == list(LABELS)
    assert label["default_entity_id"] == "sensor.ecolens_bin_7_label"
    assert label["json_attributes_topic"] == "ecolens/bin-7/result"
    assert label["origin"]["name"] == "EcoLens" and "object_id" not in label
    connectivity = by_key["connectivity"]
    assert connectivity["device_class"] == "connectivity" and "availability_topic" not in connectivity
    assert (connectivity["payload_on"], connectivity["payload_off"]) == ("online", "offline")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda c: c.update(object_id="ecolens_bin_7_label"), "object_id"),
        (lambda c: c.update(unit_of_measurement="%"), "enum with a unit"),
        (lambda c: c.pop("options"), "enum without options"),
        (lambda c: c.pop("origin"), "no origin"),
        (lambda c: c["device"].pop("identifiers"), "device without identifier"),
        (lambda c: c.update(default_entity_id="binary_sensor.x"), "entity id of another domain"),
    ],
)
def test_the_schema_refuses_what_home_assistant_refuses(change, why):
    """The checks are not vacuous: each rule HA enforces catches a broken config."""
    topic, config = next((t, c) for t, c in announced().items() if t.endswith("/label/config"))
    change(config)
    with pytest.raises(jsonschema.ValidationError):
        ha_discovery.check(topic, config)


def test_daemon_announces_and_its_states_render_as_home_assistant_shows_them(
    tmp_path, mosquitto, reference_model
):
    config = daemon_config(
        tmp_path, mosquitto, str(clip_path()), reference_model, **{"homeassistant.enabled": True}
    )
    recorder = Recorder(mosquitto.port, ["ecolens/bin-test/#", "homeassistant/#"], client_id="ha-test")
    try:
        Daemon(config).run(install_signals=False)
        assert recorder.wait(lambda: recorder.on("ecolens/bin-test/status")[-1:] == [b"offline"], 10)
        discovery = {t: json.loads(p) for t, p, _ in recorder.messages if t.startswith("homeassistant/")}
        results = list(recorder.results("ecolens/bin-test/result").values())
        stats = recorder.on("ecolens/bin-test/stats")
    finally:
        recorder.close()
    assert len(discovery) == 8
    for topic, payload in discovery.items():
        ha_discovery.check(topic, payload)
    label = next(c for c in discovery.values() if c["unique_id"].endswith("_label"))
    last = json.dumps(results[-1]).encode()
    assert render(label["value_template"], last) == results[-1]["label"]
    assert render(label["value_template"], last) in label["options"]
    attributes = json.loads(render(label["json_attributes_template"], last))
    assert attributes["scores"] == results[-1]["scores"] and attributes["uncertain"] is False

    final = json.loads(stats[-1])
    plastic = next(c for c in discovery.values() if c["unique_id"].endswith("_plastic_items"))
    share = next(c for c in discovery.values() if c["unique_id"].endswith("_plastic_share"))
    expected = final["items_by_label"].get("plastic", 0)
    assert final["items"] >= 1 and sum(final["items_by_label"].values()) == final["items"]
    assert render(plastic["value_template"], stats[-1]) == str(expected)
    items = next(c for c in discovery.values() if c["unique_id"].endswith("_items") and c is not plastic)
    assert render(items["value_template"], stats[-1]) == str(final["items"])  # not dict.items
    assert float(render(share["value_template"], stats[-1])) == round(expected / final["items"] * 100, 1)
    connectivity = next(c for c in discovery.values() if c["unique_id"].endswith("_connectivity"))
    assert connectivity["state_topic"] == "ecolens/bin-test/status"

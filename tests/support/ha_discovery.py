"""Home Assistant's MQTT discovery rules, as JSON Schema, for checking what the daemon
announces without running Home Assistant.

Written from Home Assistant's documentation (integrations/mqtt "Discovery messages",
sensor.mqtt and binary_sensor.mqtt configuration variables) and its validation code
(components/mqtt/schemas.py: MQTT_ENTITY_DEVICE_INFO_SCHEMA, MQTT_ORIGIN_INFO_SCHEMA,
the availability schemas): the keys each platform accepts (``object_id`` is gone: deprecated in
2025.10, removed in 2026.4; ``default_entity_id`` is ``<domain>.<id>``), a device needs an
identifier, an origin needs a name, and an ``enum`` sensor needs ``options`` and may have
neither ``state_class`` nor ``unit_of_measurement``.
"""

from __future__ import annotations

import re
from typing import Any

TOPIC = re.compile(
    r"^(?P<prefix>[^/]+)/(?P<component>sensor|binary_sensor)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$"
)

COMMON_KEYS = {
    "availability", "availability_mode", "availability_template", "availability_topic", "device",
    "default_entity_id", "enabled_by_default", "encoding", "entity_category", "entity_picture",
    "expire_after", "force_update", "icon", "json_attributes_template", "json_attributes_topic",
    "name", "origin", "payload_available", "payload_not_available", "qos", "state_topic",
    "unique_id", "value_template",
}  # fmt: skip
PLATFORM_KEYS = {
    "sensor": COMMON_KEYS
    | {"device_class", "last_reset_value_template", "options", "state_class",
       "suggested_display_precision", "unit_of_measurement"},
    "binary_sensor": COMMON_KEYS | {"device_class", "off_delay", "payload_off", "payload_on"},
}  # fmt: skip
DEVICE_CLASSES = {
    # the ones an EcoLens bin could use; HA has many more
    "sensor": {"enum", "duration", "data_size", "timestamp"},
    "binary_sensor": {"connectivity", "problem", "running", "update"},
}

DEVICE = {
    "type": "object",
    "properties": {
        "identifiers": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "connections": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2}},
        "manufacturer": {"type": "string"}, "model": {"type": "string"}, "name": {"type": "string"},
        "hw_version": {"type": "string"}, "serial_number": {"type": "string"},
        "sw_version": {"type": "string"}, "via_device": {"type": "string"},
        "suggested_area": {"type": "string"}, "configuration_url": {"type": "string"},
    },
    "anyOf": [{"required": ["identifiers"]}, {"required": ["connections"]}],
    "additionalProperties": False,
}  # fmt: skip
ORIGIN = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "sw_version": {"type": "string"},
        "support_url": {"type": "string", "pattern": "^https?://"},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def schema(component: str) -> dict[str, Any]:
    """JSON Schema of one per-entity discovery config of ``component``."""
    properties: dict[str, Any] = {key: {} for key in PLATFORM_KEYS[component]}
    properties.update(
        device=DEVICE,
        origin=ORIGIN,
        unique_id={"type": "string", "minLength": 1},
        default_entity_id={"type": "string", "pattern": rf"^{component}\.[a-z0-9](?:[a-z0-9_]*[a-z0-9])?$"},
        name={"type": ["string", "null"]},
        state_topic={"type": "string", "pattern": r"^[^#+]+$"},
        availability_topic={"type": "string", "pattern": r"^[^#]+$"},
        json_attributes_topic={"type": "string", "pattern": r"^[^#]+$"},
        entity_category={"enum": ["diagnostic"] if component == "sensor" else ["config", "diagnostic"]},
        device_class={"enum": sorted(DEVICE_CLASSES[component])},
        qos={"enum": [0, 1, 2]},
    )
    rules: list[dict[str, Any]] = []
    if component == "sensor":
        properties.update(
            state_class={"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
            options={"type": "array", "items": {"type": "string"}, "minItems": 1},
            unit_of_measurement={"type": "string"},
        )
        rules = [
            {  # options only with device_class enum, and enum needs them
                "if": {"required": ["options"]},
                "then": {"required": ["device_class"], "properties": {"device_class": {"const": "enum"}}},
            },
            {
                "if": {"required": ["device_class"], "properties": {"device_class": {"const": "enum"}}},
                "then": {
                    "required": ["options"],
                    "not": {"anyOf": [{"required": ["state_class"]}, {"required": ["unit_of_measurement"]}]},
                },
            },
        ]
    result: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": ["unique_id", "state_topic", "device", "origin", "default_entity_id"],
        "additionalProperties": False,
    }
    if rules:
        result["allOf"] = rules
    return result


def check(topic: str, payload: dict[str, Any]) -> str:
    """Raises jsonschema.ValidationError or AssertionError; returns the component."""
    import jsonschema

    match = TOPIC.match(topic)
    assert match, f"not a discovery topic Home Assistant reads: {topic}"
    component = match["component"]
    jsonschema.validate(payload, schema(component))
    return component

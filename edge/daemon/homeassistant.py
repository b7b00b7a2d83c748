"""Home Assistant MQTT discovery (the 2026 form): each bin is one device, announced with an
``origin`` block, entity ids suggested with ``default_entity_id`` (``object_id`` was deprecated
in HA 2025.10 and removed in 2026.4), the last label as an ``enum`` sensor with its options and
the scores as attributes, plastic count and share, a connectivity binary sensor and a problem
sensor that is on while the camera is down. The bin's status is JSON while it runs
(``{"status": "online", "camera": "up", ...}``) and the plain word ``offline`` from its last
will, which the templates read both ways.

Per-entity discovery topics (``<prefix>/<component>/ecolens_<device_id>/<key>/config``), so an
upgrade overwrites the retained configs an older version left instead of duplicating them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ecolens.core.wire import RESULT, STATS, STATUS, ha_config_topic
from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection

from ecolens import __version__

ORIGIN = {"name": "EcoLens", "sw_version": __version__}
# The status payload is JSON while the bin runs, the plain word "offline" from its last will.
STATUS_TEMPLATE = "{{ value_json.status if value_json is defined else value }}"
ATTRIBUTES_TEMPLATE = (
    "{{ {'scores': value_json.scores, 'uncertain': value_json.uncertain, "
    "'confidence': value_json.confidence, 'event_id': value_json.event_id, "
    "'timestamp': value_json.timestamp} | tojson }}"
)


@dataclass(frozen=True)
class Entity:
    key: str  # last part of the unique id and of the discovery topic
    component: str  # sensor, binary_sensor
    name: str
    leaf: str  # which of the bin's topics holds its state: result, stats, status
    fields: dict[str, Any] = field(default_factory=dict)
    available_when_online: bool = True  # the connectivity sensor must not go unavailable itself


def entities(section: HomeAssistantSection, labels: Sequence[str]) -> list[Entity]:
    plastic = json.dumps(section.plastic_label)  # a JSON string is a valid Jinja string literal
    count = f"value_json.items_by_label.get({plastic}, 0)"
    label: dict[str, Any] = {"value_template": "{{ value_json.label }}", "icon": "mdi:recycle"}
    if labels:
        label.update(device_class="enum", options=list(labels))
    return [
        Entity(
            "label",
            "sensor",
            "Last item",
            RESULT,
            {**label, "json_attributes_topic": None, "json_attributes_template": ATTRIBUTES_TEMPLATE},
        ),
        Entity(
            "confidence",
            "sensor",
            "Last item confidence",
            RESULT,
            {
                "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
            },
        ),
        Entity(
            "items",
            "sensor",
            "Items classified",
            STATS,
            # value_json['items'], not value_json.items: Jinja would find the dict's items() method
            {"value_template": "{{ value_json['items'] }}", "state_class": "total_increasing"},
        ),
        Entity(
            "plastic_items",
            "sensor",
            "Plastic items",
            STATS,
            {
                "value_template": "{{ " + count + " }}",
                "state_class": "total_increasing",
                "icon": "mdi:bottle-soda",
            },
        ),
        Entity(
            "plastic_share",
            "sensor",
            "Plastic share",
            STATS,
            {
                "value_template": "{{ ((" + count + " / value_json['items'] * 100) | round(1)) "
                "if value_json['items'] else 0 }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
                "icon": "mdi:chart-pie",
            },
        ),
        Entity(
            "queue",
            "sensor",
            "Results waiting",
            STATS,
            {
                "value_template": "{{ value_json.queue_depth }}",
                "state_class": "measurement",
                "entity_category": "diagnostic",
            },
        ),
        Entity(
            "connectivity",
            "binary_sensor",
            "Connected",
            STATUS,
            {
                "device_class": "connectivity",
                "value_template": STATUS_TEMPLATE,
                "payload_on": "online",
                "payload_off": "offline",
                "entity_category": "diagnostic",
            },
            available_when_online=False,
        ),
        Entity(
            "camera",
            "binary_sensor",
            "Camera problem",
            STATUS,
            {
                "device_class": "problem",
                "value_template": "{{ 'ON' if value_json is defined and value_json.camera == 'down' "
                "else 'OFF' }}",
                "json_attributes_topic": None,
                "json_attributes_template": "{{ {'camera': value_json.camera, 'camera_error': "
                "value_json.camera_error, 'camera_since': value_json.camera_since} | tojson "
                "if value_json is defined else '{}' }}",
                "entity_category": "diagnostic",
            },
        ),
    ]


def node_id(publish: PublishSection) -> str:
    """The discovery topic's node id: only [a-zA-Z0-9_-] are allowed there."""
    return "ecolens_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in publish.device_id)


def discovery_messages(
    section: HomeAssistantSection, publish: PublishSection, labels: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(topic, retained JSON payload) per entity."""
    node = node_id(publish)
    device = {
        "identifiers": [node],
        "name": section.name or f"EcoLens bin {publish.device_id}",
        "manufacturer": "EcoLens",
        "model": "smart bin classifier",
        "sw_version": __version__,
    }
    slug = node.lower().replace("-", "_")
    messages = []
    for entity in entities(section, labels):
        config: dict[str, Any] = {
            "name": entity.name,
            "unique_id": f"{node}_{entity.key}",
            "default_entity_id": f"{entity.component}.{slug}_{entity.key}",
            "state_topic": publish.topic(entity.leaf),
            **{k: v for k, v in entity.fields.items() if v is not None},
            "device": device,
            "origin": ORIGIN,
        }
        if "json_attributes_template" in config:
            config["json_attributes_topic"] = publish.topic(entity.leaf)
        if entity.available_when_online:
            config.update(
                availability_topic=publish.topic(STATUS),
                availability_template=STATUS_TEMPLATE,
                payload_available="online",
                payload_not_available="offline",
            )
        topic = ha_config_topic(section.discovery_prefix, entity.component, node, entity.key)
        messages.append((topic, json.dumps(config)))
    return messages

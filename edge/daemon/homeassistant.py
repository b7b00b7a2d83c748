"""Home Assistant MQTT discovery: each bin becomes a device with sensors for the last label,
its confidence and the items count, available while its status topic says ``online``."""

from __future__ import annotations

import json

from ecolens.edge.daemon.config.homeassistant import HomeAssistantSection
from ecolens.edge.daemon.config.publish import PublishSection

from ecolens import __version__

SENSORS = (
    # object id, name, state topic leaf, value template, extra fields
    ("label", "Last item", "result", "{{ value_json.label }}", {"icon": "mdi:recycle"}),
    (
        "confidence",
        "Last item confidence",
        "result",
        "{{ (value_json.confidence * 100) | round(1) }}",
        {"unit_of_measurement": "%", "state_class": "measurement"},
    ),
    (
        "items",
        "Items classified",
        "stats",
        "{{ value_json.items }}",
        {"state_class": "total_increasing"},
    ),
    (
        "queue",
        "Results waiting",
        "stats",
        "{{ value_json.queue_depth }}",
        {"state_class": "measurement", "entity_category": "diagnostic"},
    ),
)


def birth_topic(section: HomeAssistantSection) -> str:
    """Home Assistant announces its own restarts here."""
    return f"{section.discovery_prefix}/status"


def discovery_messages(section: HomeAssistantSection, publish: PublishSection) -> list[tuple[str, str]]:
    """(topic, retained JSON payload) per sensor."""
    device_id = publish.device_id
    device = {
        "identifiers": [f"ecolens_{device_id}"],
        "name": section.name or f"EcoLens bin {device_id}",
        "manufacturer": "EcoLens",
        "model": "smart bin classifier",
        "sw_version": __version__,
    }
    messages = []
    for object_id, name, leaf, template, extra in SENSORS:
        config = {
            "name": name,
            "unique_id": f"ecolens_{device_id}_{object_id}",
            "object_id": f"ecolens_{device_id}_{object_id}",
            "state_topic": publish.topic(leaf),
            "value_template": template,
            "availability_topic": publish.topic("status"),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
            **extra,
        }
        topic = f"{section.discovery_prefix}/sensor/ecolens_{device_id}/{object_id}/config"
        messages.append((topic, json.dumps(config)))
    return messages

"""Home Assistant MQTT discovery: each bin becomes a device with sensors for the last label,
its confidence and the items count, a problem sensor that is on while its camera is down,
available while its status topic says ``online`` (a JSON object with ``status`` and
``camera``; the last will is the plain word ``offline``)."""

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


# The status payload is JSON while the bin runs, the plain word "offline" from its last will.
AVAILABILITY_TEMPLATE = "{{ value_json.status if value_json is defined else value }}"
CAMERA_PROBLEM = (
    "camera",
    "Camera problem",
    "{{ 'ON' if value_json is defined and value_json.camera == 'down' else 'OFF' }}",
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
            **_availability(publish),
            "device": device,
            **extra,
        }
        topic = f"{section.discovery_prefix}/sensor/ecolens_{device_id}/{object_id}/config"
        messages.append((topic, json.dumps(config)))
    object_id, name, template = CAMERA_PROBLEM
    problem = {
        "name": name,
        "unique_id": f"ecolens_{device_id}_{object_id}",
        "object_id": f"ecolens_{device_id}_{object_id}",
        "device_class": "problem",
        "entity_category": "diagnostic",
        "state_topic": publish.topic("status"),
        "value_template": template,
        "json_attributes_topic": publish.topic("status"),
        **_availability(publish),
        "device": device,
    }
    topic = f"{section.discovery_prefix}/binary_sensor/ecolens_{device_id}/{object_id}/config"
    messages.append((topic, json.dumps(problem)))
    return messages


def _availability(publish: PublishSection) -> dict[str, str]:
    return {
        "availability_topic": publish.topic("status"),
        "availability_template": AVAILABILITY_TEMPLATE,
        "payload_available": "online",
        "payload_not_available": "offline",
    }

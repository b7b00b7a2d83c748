"""The wire vocabulary: every MQTT topic the bins and the fleet use, the filters they subscribe
with, the one rule for what a prefix and a device id may contain, and the words their payloads
share (statuses, camera states, the kinds of a rejected message). Whoever publishes and whoever
subscribes build their topics here, so the two sides cannot drift apart.

``<prefix>/<device_id>/result|status|stats|sample``: a bin's results, retained status, stats and
samples for labelling; ``<prefix>/<device_id>/model/manifest|state``: a signed rollout manifest
for the bin and the model it runs (both retained); ``<prefix>/models/<sha256>/<index>``: a
model's retained chunks, one copy for the whole fleet.
"""

from __future__ import annotations

from enum import Enum

RESULT = "result"
STATUS = "status"
STATS = "stats"
SAMPLE = "sample"
MODEL_MANIFEST = "model/manifest"
MODEL_STATE = "model/state"
MODELS = "models"

ONLINE, OFFLINE = "online", "offline"
STATUSES = (ONLINE, OFFLINE)
CAMERA_STARTING, CAMERA_UP, CAMERA_DOWN = "starting", "up", "down"
CAMERA_STATES = (CAMERA_UP, CAMERA_DOWN, CAMERA_STARTING)


class RejectionKind(str, Enum):
    """Why the fleet refused a message, as a short bounded label (metrics, counters). Set where
    the refusal is raised; ``OTHER`` is what nothing more precise said."""

    NOT_JSON = "not_json"
    TOO_LARGE = "too_large"
    UNSTORABLE_VALUE = "unstorable_value"
    CONTRACT = "contract"
    CONTRACT_VERSION = "contract_version"  # a major version this aggregator cannot read (2.0)
    DEVICE_MISMATCH = "device_mismatch"
    NO_EVENT_ID = "no_event_id"
    LABEL_NOT_IN_SCORES = "label_not_in_scores"
    BAD_STATUS = "bad_status"
    UNEXPECTED_TOPIC = "unexpected_topic"
    OTHER = "other"

    def __str__(self) -> str:
        return self.value


# --- names ---------------------------------------------------------------------------------------


def check_level(value: str) -> str:
    """One topic level: no '/', no wildcards, no NUL, and no leading '$' (reserved: $SYS, $share)."""
    if not value or value.startswith("$") or any(c in value for c in "/+#\x00"):
        raise ValueError("must be one topic level without '/', '+', '#' or a leading '$'")
    return value


def check_prefix(value: str) -> str:
    """One or more topic levels, each as ``check_level`` wants."""
    for part in value.split("/"):
        check_level(part)
    return value


# --- topics --------------------------------------------------------------------------------------


def device_topic(prefix: str, device_id: str, leaf: str) -> str:
    return f"{prefix}/{device_id}/{leaf}"


def result_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, RESULT)


def status_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, STATUS)


def stats_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, STATS)


def sample_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, SAMPLE)


def manifest_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, MODEL_MANIFEST)


def state_topic(prefix: str, device_id: str) -> str:
    return device_topic(prefix, device_id, MODEL_STATE)


def model_fetch(prefix: str, sha256: str) -> str:
    """Where a model's chunks live (the manifest's ``fetch``): ``<prefix>/models/<sha256>``."""
    return f"{prefix}/{MODELS}/{sha256}"


def chunk_topic(prefix: str, sha256: str, index: int) -> str:
    return f"{model_fetch(prefix, sha256)}/{index}"


def ha_birth_topic(discovery_prefix: str) -> str:
    """Home Assistant announces its own restarts here."""
    return f"{discovery_prefix}/{STATUS}"


def ha_config_topic(discovery_prefix: str, component: str, node: str, key: str) -> str:
    """Where one entity's retained discovery config goes."""
    return f"{discovery_prefix}/{component}/{node}/{key}/config"


# --- subscription filters ------------------------------------------------------------------------


def subscriptions(prefix: str, share_group: str | None) -> list[str]:
    """The aggregator's. Results are shared between the group's aggregators; status is
    subscribed by every aggregator without sharing, because brokers never send retained
    messages to a shared subscription (MQTT 5, 4.8.2) and status is retained."""
    results = result_topic(prefix, "+")
    if share_group:
        results = f"$share/{share_group}/{results}"
    return [results, status_topic(prefix, "+")]


def stats_filter(prefix: str) -> str:
    """Every bin's stats (QoS 0, not retained: the next one replaces a lost one)."""
    return stats_topic(prefix, "+")


def sample_filter(prefix: str) -> str:
    """Every bin's samples."""
    return sample_topic(prefix, "+")


def state_filter(prefix: str) -> str:
    """Every bin's running model."""
    return state_topic(prefix, "+")


def chunk_filter(prefix: str, sha256: str) -> str:
    """Every chunk of one model."""
    return f"{model_fetch(prefix, sha256)}/+"


# --- reading topics ------------------------------------------------------------------------------


def split_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``ecolens/bin-7/result`` -> ("bin-7", "result"); None for anything else."""
    parts = topic.split("/")
    prefix_parts = prefix.split("/")
    if len(parts) != len(prefix_parts) + 2 or parts[: len(prefix_parts)] != prefix_parts:
        return None
    device_id, kind = parts[-2], parts[-1]
    if not device_id or kind not in (RESULT, STATUS):
        return None
    return device_id, kind


def device_of(topic: str) -> str:
    """The device level of a ``<prefix>/<device_id>/<leaf>`` topic the subscription matched."""
    parts = topic.split("/")
    return parts[-2] if len(parts) >= 2 else ""


def chunk_index(prefix: str, sha256: str, topic: str) -> int | None:
    """The index of one of the model's chunks from its topic; None for any other topic."""
    head = f"{model_fetch(prefix, sha256)}/"
    if not topic.startswith(head):
        return None
    try:
        return int(topic[len(head) :])
    except ValueError:
        return None

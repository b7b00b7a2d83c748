"""[subscriber]: which topics the aggregator follows and how it batches writes."""

from __future__ import annotations

from ecolens.core.config import Section
from ecolens.core.wire import check_prefix
from pydantic import Field, field_validator


class SubscriberSection(Section):
    """MQTT subscription and write batching of `ecolens aggregate`."""

    prefix: str = Field("ecolens", description="topic prefix: results on <prefix>/<device_id>/result")
    share_group: str | None = Field(
        None,
        description="MQTT 5 shared-subscription group: aggregators with the same group split "
        "the results between them ($share/<group>/<prefix>/+/result); unset = receive all",
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        le=2**32 - 1,
        description="how long the broker keeps this aggregator's session and queued results "
        "while it is down (persistent session)",
    )
    batch_size: int = Field(500, ge=1, le=10000, description="most results written in one transaction")
    batch_wait_ms: int = Field(
        200,
        ge=0,
        le=60000,
        description="longest a received result waits for its batch to fill before it is written",
    )
    receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="unacknowledged results the broker may send ahead (MQTT 5 Receive "
        "Maximum); at least batch_size for full batches",
    )

    max_payload_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="larger messages are rejected unread (a result is under 1 KiB)",
    )

    @field_validator("prefix")
    @classmethod
    def _plain_prefix(cls, value: str) -> str:
        return check_prefix(value.strip("/"))

    @field_validator("share_group")
    @classmethod
    def _plain_group(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/+#")):
            raise ValueError("must be a non-empty name without / + #")
        return value

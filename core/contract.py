"""The result contract: the one JSON object published on MQTT and returned by POST /predict.

Every transport builds results here, so the shape cannot drift between them. How the contract
may change (docs/contract.md): within 1.x writers add only optional fields, and readers accept
any 1.x version and fields they do not know, so bins and aggregators upgrade in any order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

CONTRACT_VERSION = "1.0"  # what this release writes
CONTRACT_MAJOR = 1  # what this release reads: every 1.x
OPTIONAL_FIELDS = ("frames", "device_id", "event_id", "seq", "request_id", "source")


def utc_timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with millisecond precision and a 'Z' suffix."""
    moment = moment or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_result(
    labels: Sequence[str],
    probabilities: Sequence[float],
    model: Mapping[str, str],
    inference_ms: float,
    *,
    seen_at: datetime | None = None,
    min_confidence: float = 0.0,
    **optional: Any,
) -> dict[str, Any]:
    """Build a contract result from per-label probabilities."""
    if len(labels) != len(probabilities):
        raise ValueError("one probability per label is required")
    unknown = set(optional) - set(OPTIONAL_FIELDS)
    if unknown:
        raise ValueError(f"not contract fields: {sorted(unknown)}")
    scores = {label: round(min(1.0, max(0.0, float(p))), 6) for label, p in zip(labels, probabilities)}
    label = max(scores, key=scores.__getitem__)
    result: dict[str, Any] = {
        "contract_version": CONTRACT_VERSION,
        "label": label,
        "confidence": scores[label],
        "scores": scores,
        "uncertain": scores[label] < min_confidence,
        "model": dict(model),
        "inference_ms": round(float(inference_ms), 3),
        "timestamp": utc_timestamp(seen_at),
    }
    result.update({key: value for key, value in optional.items() if value is not None})
    return result


@lru_cache(maxsize=1)
def result_schema() -> dict[str, Any]:
    """The JSON Schema shipped with the package (core/schema/result.schema.json)."""
    from importlib import resources  # not at import: a cold `ecolens classify` never needs it

    text = resources.files("ecolens.core").joinpath("schema/result.schema.json").read_text()
    return json.loads(text)


@lru_cache(maxsize=1)
def _result_validator() -> Any:
    """Built once: jsonschema.validate() re-checks the schema on every call (milliseconds),
    which limits a fleet subscriber to a few hundred results per second."""
    import jsonschema

    validator_class = jsonschema.validators.validator_for(result_schema())
    validator_class.check_schema(result_schema())
    return validator_class(result_schema(), format_checker=jsonschema.FormatChecker())


def contract_major(result: Mapping[str, Any]) -> int | None:
    """The major version a result claims ("1.7" -> 1), None when it claims none readable."""
    version = result.get("contract_version")
    major = version.split(".", 1)[0] if isinstance(version, str) else ""
    return int(major) if major.isascii() and major.isdigit() else None


def validate_result(result: Mapping[str, Any], *, written: bool = False) -> None:
    """Raise jsonschema.ValidationError when ``result`` breaks the contract (needs jsonschema).

    As a reader (the default) any 1.x version and unknown fields pass; ``written=True`` checks
    what this release itself writes: exactly CONTRACT_VERSION and only the fields it defines."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_result_validator().iter_errors(dict(result)))
    if error is not None:
        raise error
    if written:
        unknown = sorted(set(result) - set(result_schema()["properties"]))
        if unknown:
            raise jsonschema.ValidationError(f"fields this release does not write: {unknown}")
        if result["contract_version"] != CONTRACT_VERSION:
            raise jsonschema.ValidationError(f"this release writes contract {CONTRACT_VERSION}")

"""A rejected message's reason is a sentence for people; metrics and counters get a short,
bounded kind (no prometheus_client here: the subscriber counts kinds without the extra)."""

from __future__ import annotations

import re

REASON_KINDS = (
    (
        re.compile(
            r"^not JSON|^not a JSON object|^not UTF-8|^starts with a byte-order mark|^contains a NUL byte"
            r"|^status is not (UTF-8|valid JSON)"
        ),
        "not_json",
    ),
    (re.compile(r"^payload of \d+ bytes is over"), "too_large"),
    (
        re.compile(
            r"nested deeper|^more than \d+ JSON values|string longer than|NUL character|lone surrogate"
            r"|out of the 64-bit range|out of range for a double|not finite|not a JSON number"
            r"|is not a real time"
        ),
        "unstorable_value",
    ),
    (re.compile(r"^breaks the result contract|^frames .* is out of range"), "contract"),
    (re.compile(r"^device_id .* does not match"), "device_mismatch"),
    (re.compile(r"^no event_id"), "no_event_id"),
    (re.compile(r"^label is not one of scores"), "label_not_in_scores"),
    (re.compile(r"^status must be"), "bad_status"),
    (re.compile(r"^unexpected topic"), "unexpected_topic"),
)


def reason_kind(reason: str) -> str:
    for pattern, kind in REASON_KINDS:
        if pattern.search(reason):
            return kind
    return "other"

"""Decodes one MQTT payload into plain JSON values that both databases can store, or says why
not. Runs before the contract schema, so that nothing a bin (or anyone with broker access)
sends can crash the writer thread or make a database refuse a row: the payload is bounded in
size and nesting, UTF-8 only, its numbers are finite and fit the columns, its strings hold no
NUL and no lone surrogate (PostgreSQL and SQLite's UTF-8 encoder refuse both)."""

from __future__ import annotations

import json
import math
from typing import Any

from ecolens.core.wire import RejectionKind

MAX_PAYLOAD_BYTES = 64 * 1024  # a result is ~600 bytes; room for long source paths
MAX_DEPTH = 8  # a result nests 2 levels (scores, model)
MAX_VALUES = 1000  # a result holds ~20 values (a model with many labels: a few hundred)
MAX_STRING_CHARS = 4096  # a file path (PATH_MAX)
MAX_KEY_CHARS = 256  # identifiers stored in indexed columns (event_id, device_id, label)
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
INT_MAX = 2**31 - 1  # PostgreSQL INTEGER (frames)
DOUBLE_MAX = 1.7976931348623157e308


class PayloadError(ValueError):
    """The payload cannot become a stored row; the message is the rejection reason for people,
    ``kind`` the one for counting (metrics)."""

    def __init__(self, reason: str, kind: RejectionKind = RejectionKind.UNSTORABLE_VALUE) -> None:
        super().__init__(reason)
        self.kind = kind


def _no_constants(name: str) -> Any:
    raise PayloadError(f"{name} is not a JSON number (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"{text[:40]} is out of range for a double")
    return value


def storable_string(value: str, where: str, limit: int = MAX_STRING_CHARS) -> None:
    """Both databases store UTF-8 text: no NUL (PostgreSQL), no lone surrogate (neither)."""
    if len(value) > limit:
        raise PayloadError(f"{where}: string longer than {limit} characters")
    if "\x00" in value:
        raise PayloadError(f"{where}: string contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PayloadError(f"{where}: string contains a lone surrogate (not valid Unicode)") from None


def check_values(root: Any, max_string_chars: int = MAX_STRING_CHARS) -> None:
    """At most MAX_DEPTH levels and MAX_VALUES values, every string storable, every integer
    a BIGINT, every float finite. Iterative (an explicit stack): no input can exhaust the
    recursion limit."""
    stack: list[tuple[Any, str, int]] = [(root, "(top level)", 0)]
    seen = 0
    while stack:
        value, where, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:  # bounds the schema check's work on a wide payload
            raise PayloadError(f"more than {MAX_VALUES} JSON values")
        if isinstance(value, str):
            storable_string(value, where, max_string_chars)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not BIGINT_MIN <= value <= BIGINT_MAX:
                raise PayloadError(f"{where}: integer out of the 64-bit range")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise PayloadError(f"{where}: number is not finite")
        elif isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
            prefix = "" if where == "(top level)" else f"{where}/"
            if isinstance(value, dict):
                for key, item in value.items():
                    storable_string(key, f"{prefix}{key[:40]} key", MAX_KEY_CHARS)
                    stack.append((item, f"{prefix}{key[:40]}", depth + 1))
            else:
                stack.extend((item, f"{prefix}{index}", depth + 1) for index, item in enumerate(value))


def decode_payload(
    payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES, max_string_chars: int = MAX_STRING_CHARS
) -> tuple[str, Any]:
    """(the UTF-8 text, its JSON value); raises PayloadError with the reason. A sample message
    raises ``max_string_chars`` for its base64 image."""
    if len(payload) > max_bytes:
        raise PayloadError(
            f"payload of {len(payload)} bytes is over the {max_bytes}-byte limit", RejectionKind.TOO_LARGE
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            f"not UTF-8 text (byte {exc.start}): results are UTF-8 JSON", RejectionKind.NOT_JSON
        ) from None
    if text.startswith("\ufeff"):
        raise PayloadError(
            "starts with a byte-order mark: results are UTF-8 JSON without one", RejectionKind.NOT_JSON
        )
    if "\x00" in text:
        raise PayloadError("contains a NUL byte (UTF-16 or binary data?)", RejectionKind.NOT_JSON)
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except PayloadError:
        raise
    except RecursionError:  # the C decoder's own guard: "[" * 200000
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise PayloadError(f"not JSON: {str(exc)[:200]}", RejectionKind.NOT_JSON) from None
    check_values(value, max_string_chars)
    return text, value


def storable_text(text: str, limit: int) -> str:
    """Any text made safe to keep in a TEXT column (rejection reasons, kept payloads):
    lone surrogates and NUL escaped, cut to ``limit`` characters."""
    text = text[:limit].encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def printable(value: Any) -> str:
    """Text a bin sent, safe to print on a terminal or in one log line: control characters
    (escape sequences, newlines) replaced."""
    return "".join(c if c.isprintable() else "?" for c in str(value))

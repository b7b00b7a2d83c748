"""Structured access log: one JSON object per request on stderr (journald keeps it).

Only metadata is logged: never the body, never image bytes, never the API key (its short
hash id at most)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from ecolens.edge.contract import utc_timestamp

ACCESS_LOGGER = "ecolens.api.access"


class JsonLineFormatter(logging.Formatter):
    """``record.access`` (a dict) as one JSON line, with a timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": utc_timestamp(), "log": "access"}
        entry.update(getattr(record, "access", {}) or {"message": record.getMessage()})
        return json.dumps(entry, separators=(",", ":"), default=str)


def access_logger(enabled: bool) -> logging.Logger:
    """The access logger, configured once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(h.formatter, JsonLineFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    return logger


def log_access(logger: logging.Logger, **fields: Any) -> None:
    logger.info("access", extra={"access": {k: v for k, v in fields.items() if v is not None}})

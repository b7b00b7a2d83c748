"""Structured access log: one JSON object per request on stderr (journald keeps it).

Only metadata is logged: never the body, never image bytes, never the API key (its short
hash id at most)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ecolens.core.logs import JsonFormatter

ACCESS_LOGGER = "ecolens.api.access"


def access_logger(enabled: bool) -> logging.Logger:
    """The access logger, configured once per process."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.CRITICAL + 1)
    return logger


def log_access(logger: logging.Logger, **fields: Any) -> None:
    logger.info("access", extra={"access": {k: v for k, v in fields.items() if v is not None}})

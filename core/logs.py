"""Structured logs: one JSON object per line on stderr (journald keeps them as they are).

The one JSON formatter: the daemon's and aggregator's logs and the API's access log share its
keys (``time``, ``level``, ``logger``, ``message``), so one log pipeline parses them all."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone

# Fields a caller may attach with ``log.info(msg, extra={"event": ..., "result": ...})``.
EXTRA_FIELDS = ("event", "result", "event_id", "error", "topic", "depth")


class JsonFormatter(logging.Formatter):
    """A record as one JSON line; a ``record.access`` dict (the API's access log) is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        access = getattr(record, "access", None)
        if access:
            entry.update(access)
        for name in EXTRA_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str, level: str) -> None:
    """Replace the CLI's plain handler with the configured one."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("PIL").setLevel(logging.WARNING)

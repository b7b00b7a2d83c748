"""[store]: the on-disk queue that keeps results until the broker acknowledged them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from ecolens.core.config import Section
from pydantic import Field


def default_state_dir() -> Path:
    """systemd's StateDirectory, else the XDG state folder of the user."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state"
    return Path(base) / "ecolens"


class StoreSection(Section):
    """SQLite (WAL) queue; bounded, the oldest results are dropped first when full."""

    path: Path | None = Field(
        None,
        description="queue file; default: $STATE_DIRECTORY/queue.sqlite3 (systemd) or "
        "~/.local/state/ecolens/queue.sqlite3",
    )
    max_items: int = Field(10_000, ge=1, description="queue bound; when full the oldest result is dropped")
    synchronous: Literal["background", "full", "normal"] = Field(
        "background",
        description="'background': committed before publishing (survives kill -9) and fsync'd "
        "by a sync thread within 50 ms, after the publish (a power cut can lose the last 50 ms of "
        "results the broker had not acknowledged); 'full': fsync'd before publishing (adds the "
        "disk's fsync time to every result's latency); 'normal': fsync only at checkpoints (a "
        "power cut may lose every result not yet acknowledged by the broker)",
    )

    def resolved_path(self) -> Path:
        return self.path if self.path is not None else default_state_dir() / "queue.sqlite3"

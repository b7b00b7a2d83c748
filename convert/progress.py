"""Progress lines of the workstation tools (`[convert] ...`, `[train] ...`, `[adapt] ...`) go to
stderr, flushed at once, so stdout keeps only the report or JSON a script reads."""

from __future__ import annotations

import sys
from collections.abc import Callable


def progress(tag: str) -> Callable[[str], None]:
    """A writer of ``[tag] message`` lines on stderr."""

    def log(message: str) -> None:
        print(f"[{tag}] {message}", file=sys.stderr, flush=True)

    return log

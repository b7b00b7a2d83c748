"""Where the arm64 harness keeps what is slow to make (root filesystems, wheels, venvs), and
a lock so two runs never build the same thing at once."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_ENV = "ECOLENS_ARM64_CACHE"


def cache_dir() -> Path:
    """``$ECOLENS_ARM64_CACHE`` or ``~/.cache/ecolens/arm64``; delete it for a cold run."""
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "ecolens" / "arm64"
    base.mkdir(parents=True, exist_ok=True)
    return base


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` in the cache (blocks until it is free)."""
    path = cache_dir() / f".{name}.lock"
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

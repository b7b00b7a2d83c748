"""The rollout's private key for the aggregator's automatic rollbacks, refused when others than
its owner may read it."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError


def read_signing_key(path: Path) -> Any:
    """The rollout's private key for the aggregator's automatic rollbacks. Refused when others
    than its owner may read it: whoever reads it can sign any model for every bin."""
    from ecolens.core.rollout import load_private_key

    try:
        mode = os.stat(path).st_mode
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"rollout.key_file: cannot read {path}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"rollout.key_file: {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"chmod 600 it, owned by the aggregator's user"
        )
    return load_private_key(pem)

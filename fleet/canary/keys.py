"""The rollout's private key for the aggregator's automatic rollbacks, opened by
``core.secret_files`` (no links, owner and mode checked, the folder too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecolens.core.errors import ConfigError
from ecolens.core.secret_files import SecretFileError, read_secret


def read_signing_key(path: Path) -> Any:
    """The rollout's private key for the aggregator's automatic rollbacks. Refused when anyone
    but its owner could read, swap or redirect it: whoever holds it signs models for every bin."""
    from ecolens.core.rollout import load_private_key

    try:
        pem = read_secret(Path(path))
    except SecretFileError as exc:
        raise ConfigError(f"rollout.key_file: {exc}") from None
    return load_private_key(pem)

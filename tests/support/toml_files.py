"""Write test config files with a real TOML writer (tomli-w), not string formatting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w


def plain(value: Any) -> Any:
    """Paths and other objects as strings; TOML has no type for them."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return str(value)


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    path.write_text(tomli_w.dumps(plain(sections)))
    return path

"""Changing one setting in the daemon's TOML file from the bin page, keeping the rest of the
file (comments, order) as the installer wrote it."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_SECTION = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")
_ROI_LINE = re.compile(r"^\s*roi\s*=")


def with_detect_roi(text: str, roi: tuple[float, float, float, float] | None) -> str:
    """``text`` with ``[detect] roi`` set to ``roi`` (None removes it: the whole frame). Only a
    one-line ``roi = [...]`` is recognised; that is how the docs and this function write it."""
    value = None if roi is None else "roi = [" + ", ".join(f"{v:.4f}" for v in roi) + "]"
    lines = text.splitlines()
    headers = [(i, m[1].strip()) for i, line in enumerate(lines) if (m := _SECTION.match(line))]
    start = next((i for i, name in headers if name == "detect"), None)
    if start is None:
        if value is None:
            return text
        return text.rstrip("\n") + ("\n\n" if text.strip() else "") + f"[detect]\n{value}\n"
    end = next((i for i in range(start + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    existing = next((i for i in range(start + 1, end) if _ROI_LINE.match(lines[i])), None)
    if existing is not None:
        if value is None:
            del lines[existing]
        else:
            lines[existing] = value
    elif value is not None:
        lines.insert(start + 1, value)
    return "\n".join(lines) + "\n"


def replace_file(path: Path, text: str) -> None:
    """Atomic: a reader (the daemon's reload, an editor) sees the old file or the new one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        if path.exists():
            os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

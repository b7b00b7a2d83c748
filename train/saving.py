"""A trained or adapted model written as HDF5 with its EcoLens metadata, atomically: a failed
write leaves nothing at the output path, so a model that is there is always a whole one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ecolens.convert.h5meta import write_h5_metadata


def save_h5(model: Any, out: Path, metadata: dict[str, Any]) -> None:
    """``model.save`` (weights only: a third of the size) plus ``metadata`` in the file's root
    attributes, in a temporary file beside ``out`` that then replaces it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".h5", dir=out.parent, prefix=".tmp-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save(tmp, include_optimizer=False)
        os.chmod(tmp, 0o644)
        write_h5_metadata(tmp, metadata)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)

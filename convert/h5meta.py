"""EcoLens metadata stored in a Keras HDF5 file's root attributes by `ecolens train`,
so `ecolens convert` knows labels and normalization without extra flags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

H5_ATTRIBUTE = "ecolens_metadata"


def write_h5_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    import h5py

    with h5py.File(path, "a") as handle:
        handle.attrs[H5_ATTRIBUTE] = json.dumps(metadata, sort_keys=True)


def read_h5_metadata(path: str | Path) -> dict[str, Any]:
    """The stored dict, or {} for .h5 files written elsewhere (e.g. the seed team's)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get(H5_ATTRIBUTE)
    except OSError:
        return {}
    if raw is None:
        return {}
    return json.loads(raw if isinstance(raw, str) else raw.decode())

"""Real, loadable variants of the reference .tflite: the same network with other metadata
(a newer version; or inputs scaled to nothing, so it answers one class whatever it sees)."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

from ecolens.core.metadata import embed_metadata, read_metadata


def flatbuffer_of(path: Path) -> bytes:
    """The model without its appended metadata archive."""
    with zipfile.ZipFile(path) as archive:
        start = archive.infolist()[0].header_offset
    return path.read_bytes()[:start]


def variant(reference: Path, out: Path, version: str, *, one_class: bool = False) -> Path:
    meta = read_metadata(reference)
    changes: dict = {"version": version}
    if one_class:
        changes["input"] = dataclasses.replace(meta.input, std=(1e9, 1e9, 1e9))
    out.write_bytes(embed_metadata(flatbuffer_of(reference), dataclasses.replace(meta, **changes)))
    return out

"""What the samples take, per bin and in all, counted as the disk counts it: allocated blocks
(``st_blocks * 512``, so a 20-byte file costs its 4 KiB block), files (one inode and one database
row per sample) and the database itself.

Why per bin: any one bin (or anyone holding its broker credentials) may publish samples; a bin
must not be able to take the whole folder, nor the whole labelling view."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

MB = 1024**2
DATABASE_FILES = ("samples.sqlite3", "samples.sqlite3-wal", "samples.sqlite3-shm")


def allocated(path: Path) -> int:
    """Bytes the file takes on its disk (0 when gone)."""
    try:
        return path.stat().st_blocks * 512
    except OSError:
        return 0


def allocation_of(size: int, block: int) -> int:
    """What a new file of ``size`` bytes will take: whole blocks, at least one."""
    return max(1, -(-size // block)) * block


@dataclass(frozen=True)
class Quota:
    """Caps on the folder (``max_bytes``) and on each bin (``bin_bytes``, ``bin_files``)."""

    max_bytes: int
    bin_bytes: int
    bin_files: int


class Usage:
    """Allocated bytes and samples per bin, plus the database's bytes; counted from the folder
    and the table at start and when full (another process may have pruned)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.block = os.statvfs(folder).f_bsize or 4096
        self.bins: dict[str, list[int]] = {}  # device -> [allocated bytes, samples]

    def recount(self, db: sqlite3.Connection) -> None:
        bins: dict[str, list[int]] = {}
        for device, rows in db.execute("SELECT device_id, count(*) FROM samples GROUP BY device_id"):
            bins[device] = [0, rows]
        for image in self.folder.glob("*/*.jpg"):
            bins.setdefault(image.parent.name, [0, 0])[0] += allocated(image)
        self.bins = bins

    def database_bytes(self) -> int:
        return sum(allocated(self.folder / name) for name in DATABASE_FILES)

    def total_bytes(self) -> int:
        return sum(used for used, _ in self.bins.values()) + self.database_bytes()

    def refusal(self, quota: Quota, device: str, size: int) -> str | None:
        """Why a new sample of ``size`` bytes from ``device`` may not be stored, or None."""
        cost = allocation_of(size, self.block)
        used, files = self.bins.get(device, [0, 0])
        if files + 1 > quota.bin_files:
            return (
                f"bin {device} holds {files} samples, its quota (--samples-bin-max-files "
                f"{quota.bin_files}): label, export and prune its samples, or raise the quota"
            )
        total = self.total_bytes()
        if total + cost > quota.max_bytes:
            return (
                f"samples folder holds {total / MB:.0f} MB, its cap (--samples-max-mb "
                f"{quota.max_bytes // MB}): export and delete labelled samples, or raise the cap"
            )
        if used + cost > quota.bin_bytes:
            return (
                f"bin {device}'s samples take {used / MB:.0f} MB on disk, its quota "
                f"(--samples-bin-max-mb {quota.bin_bytes // MB}): label, export and prune them, or raise it"
            )
        return None

    def added(self, device: str, path: Path) -> None:
        entry = self.bins.setdefault(device, [0, 0])
        entry[0] += allocated(path)
        entry[1] += 1

    def removed(self, device: str, freed: int) -> None:
        entry = self.bins.setdefault(device, [0, 0])
        entry[0] = max(0, entry[0] - freed)
        entry[1] = max(0, entry[1] - 1)

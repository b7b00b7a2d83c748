"""Optional audit trail: a small JPEG per classified item, for checking and relabelling.
Bounded: past the disk budget the oldest images are deleted."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


class AuditWriter:
    def __init__(self, folder: Path, max_mb: float, max_side: int, quality: int) -> None:
        self.folder = Path(folder)
        self.max_bytes = int(max_mb * 2**20)
        self.max_side = max_side
        self.quality = quality
        self.folder.mkdir(parents=True, exist_ok=True)
        self._files = sorted(self.folder.rglob("*.jpg"), key=lambda p: p.stat().st_mtime)
        self._bytes = sum(p.stat().st_size for p in self._files)

    def save(self, rgb: np.ndarray, result: dict) -> Path | None:
        """``<folder>/<YYYY-MM-DD>/<event_id>_<label>.jpg``; failures are logged, never raised."""
        try:
            height, width = rgb.shape[:2]
            scale = min(1.0, self.max_side / max(height, width))
            if scale < 1.0:
                rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            ok, encoded = cv2.imencode(
                ".jpg",
                cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, self.quality],
            )
            if not ok:
                raise OSError("JPEG encoding failed")
            day = self.folder / result["timestamp"][:10]
            day.mkdir(exist_ok=True)
            path = day / f"{result['event_id']}_{result['label']}.jpg"
            path.write_bytes(encoded.tobytes())
        except OSError as exc:
            log.error("audit image not saved: %s", exc)
            return None
        self._files.append(path)
        self._bytes += path.stat().st_size
        self._trim()
        return path

    def _trim(self) -> None:
        while self._bytes > self.max_bytes and len(self._files) > 1:
            oldest = self._files.pop(0)
            try:
                self._bytes -= oldest.stat().st_size
                oldest.unlink()
            except OSError:
                pass

    @property
    def used_bytes(self) -> int:
        return self._bytes

"""A folder or glob of still images: each image is one item, classified whole."""

from __future__ import annotations

import logging
from pathlib import Path

from ecolens.core.errors import ImageError
from ecolens.core.preprocess import find_images, load_image
from ecolens.edge.daemon.sources.base import Frame, SourceError

log = logging.getLogger(__name__)


class ImageFolderSource:
    """Yields every image once (or forever with ``loop``); an unreadable image is logged and
    skipped so one bad file never stops the rest."""

    live = False

    def __init__(self, uri: str, loop: bool = False) -> None:
        self.uri = uri
        self.name = f"images:{uri}"
        self.loop = loop
        self._paths: list[Path] = []
        self._next = 0
        self._t = 0.0

    def open(self) -> None:
        self._paths = find_images(self.uri)
        if not self._paths:
            raise SourceError(f"no images (jpg, png, bmp, webp) found at {self.uri}")
        self._next = 0

    def read(self) -> Frame | None:
        while True:
            if self._next >= len(self._paths):
                if not self.loop:
                    return None
                self._next = 0
            path = self._paths[self._next]
            self._next += 1
            self._t += 1.0
            try:
                rgb = load_image(path)
            except ImageError as exc:
                log.error("skipping image: %s", exc)
                continue
            return Frame(rgb, "RGB", t=self._t, path=str(path))

    def close(self) -> None:
        self._paths = []

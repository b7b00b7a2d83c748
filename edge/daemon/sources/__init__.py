"""Frame sources behind one interface, chosen by [source] in the config."""

from __future__ import annotations

import threading
from pathlib import Path

from ecolens.core.preprocess import is_image_path
from ecolens.edge.daemon.config.source import SourceSection
from ecolens.edge.daemon.sources.base import Frame, FrameSource, SourceError
from ecolens.edge.daemon.sources.reopen import ReopeningSource

__all__ = ["Frame", "FrameSource", "SourceError", "detect_kind", "make_source"]

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mjpg", ".mjpeg", ".h264"}


def detect_kind(uri: str) -> str:
    """Guess the source type from its URI."""
    lowered = uri.lower()
    if lowered == "picamera2" or lowered.startswith("picamera2:"):
        return "picamera2"
    if "://" in uri:
        return "stream"
    if uri.isdigit() or uri.startswith("/dev/video"):
        return "camera"
    path = Path(uri)
    if path.is_dir() or any(ch in uri for ch in "*?["):
        return "images"
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return "file"
    if is_image_path(path):
        return "images"
    return "file"


def make_source(section: SourceSection, stop: threading.Event) -> ReopeningSource:
    """The configured source, wrapped so live sources survive drops."""
    kind = detect_kind(section.uri) if section.kind == "auto" else section.kind
    source: FrameSource
    if kind == "picamera2":
        from ecolens.edge.daemon.sources.picamera import PiCameraSource

        _, _, number = section.uri.partition(":")
        source = PiCameraSource(
            int(number) if number.isdigit() else 0,
            section.width or 640,
            section.height or 480,
            section.fps,
        )
    elif kind == "images":
        from ecolens.edge.daemon.sources.images import ImageFolderSource

        source = ImageFolderSource(section.uri, loop=section.loop)
    else:
        from ecolens.edge.daemon.sources.opencv import OpenCVSource

        if kind == "file" and not Path(section.uri).is_file():
            raise SourceError(f"video file not found: {section.uri}")
        source = OpenCVSource(
            section.uri,
            kind,
            section.width,
            section.height,
            section.fps,
            loop=section.loop,
            speed=section.speed,
        )
    return ReopeningSource(source, stop, section.reopen_min_s, section.reopen_max_s, section.open_attempts)

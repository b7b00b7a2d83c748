"""[source]: where frames come from."""

from __future__ import annotations

from typing import Literal

from ecolens.core.config import Section
from pydantic import Field

SourceKind = Literal["auto", "camera", "stream", "file", "images", "picamera2"]


class SourceSection(Section):
    """One frame source; ``kind = "auto"`` guesses it from ``uri``."""

    uri: str = Field(
        "0",
        description=(
            "camera index (0) or device (/dev/video0), rtsp:// or http(s):// stream URL, video "
            "file, folder or glob of images, or 'picamera2' / 'picamera2:N' for a Pi camera"
        ),
    )
    kind: SourceKind = Field("auto", description="force the source type instead of guessing")
    width: int | None = Field(640, ge=16, description="requested capture width (cameras)")
    height: int | None = Field(480, ge=16, description="requested capture height (cameras)")
    fps: float | None = Field(None, gt=0, description="requested capture frame rate (cameras)")
    loop: bool = Field(False, description="video files and image folders start over at the end")
    speed: float = Field(
        1.0,
        ge=0,
        description="video file playback speed: 1.0 = real time like a camera, 0 = as fast as possible",
    )
    reopen_min_s: float = Field(0.5, gt=0, description="first wait before reopening a lost source")
    reopen_max_s: float = Field(30.0, gt=0, description="longest wait between reopen attempts")
    open_attempts: int = Field(
        3,
        ge=1,
        description="attempts (with backoff) to open the source at start-up: a video file or image "
        "folder then stops the daemon with an error; a camera or stream is reported down "
        "(status camera: down) and retried for ever with backoff, as when it drops later",
    )

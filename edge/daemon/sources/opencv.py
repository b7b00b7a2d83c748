"""Cameras (V4L2 index or device path), RTSP/HTTP streams and video files through OpenCV."""

from __future__ import annotations

import time

import cv2
from ecolens.edge.daemon.sources.base import Frame, SourceError

STREAM_TIMEOUT_MS = 10_000


class OpenCVSource:
    """``kind`` is camera, stream or file. Files are paced to ``speed`` x real time (0 = as fast
    as possible) and can loop; cameras and streams are live (reopened by the caller)."""

    def __init__(
        self,
        uri: str,
        kind: str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        loop: bool = False,
        speed: float = 1.0,
    ) -> None:
        self.uri = uri
        self.kind = kind
        self.name = f"{kind}:{uri}"
        self.live = kind != "file"
        self.width, self.height, self.fps = width, height, fps
        self.loop = loop
        self.speed = speed
        self._capture: cv2.VideoCapture | None = None
        self._index = 0
        self._offset_s = 0.0
        self._file_fps = 0.0
        self._started = 0.0

    def _target(self) -> int | str:
        return int(self.uri) if self.kind == "camera" and self.uri.isdigit() else self.uri

    def open(self) -> None:
        self.close()
        if self.kind == "stream":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                STREAM_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                STREAM_TIMEOUT_MS,
            ]
            capture = cv2.VideoCapture(self.uri, cv2.CAP_ANY, params)
        else:
            capture = cv2.VideoCapture(self._target())
        if not capture.isOpened():
            capture.release()
            what = {"camera": "camera", "stream": "stream", "file": "video file"}[self.kind]
            hint = {
                "camera": " (no such device, busy, or no permission: is the user in group video?)",
                "stream": " (unreachable, wrong URL or credentials)",
                "file": " (missing or not a video OpenCV can decode)",
            }[self.kind]
            raise SourceError(f"cannot open {what} {self.uri}{hint}")
        if self.kind == "camera":
            if self.width and self.height:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                capture.set(cv2.CAP_PROP_FPS, self.fps)
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._file_fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        self._capture = capture
        self._started = time.monotonic()

    def read(self) -> Frame | None:
        if self._capture is None:
            raise SourceError(f"{self.name} is not open")
        ok, pixels = self._capture.read()
        if not ok and self.kind == "file" and self.loop and self._index > 0:
            self._offset_s += self._index / self._file_fps
            self._index = 0
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, pixels = self._capture.read()
        if not ok:
            if self.kind == "file":
                return None
            raise SourceError(f"{self.name} stopped delivering frames")
        if self.kind != "file":
            return Frame(pixels, "BGR", t=time.monotonic())
        media_t = self._offset_s + self._index / self._file_fps
        self._index += 1
        if self.speed > 0:
            delay = self._started + media_t / self.speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return Frame(pixels, "BGR", t=media_t)

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

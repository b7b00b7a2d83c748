"""A stand-in for picamera2 (which needs libcamera and a Pi camera) following its API:
Picamera2(camera_num), create_video_configuration / create_preview_configuration,
configure, start, capture_array, stop, close. Frames replay a video file with OpenCV, in
the layout picamera2 gives for format "RGB888" (B, G, R byte order, H x W x 3 uint8).

Tests put the folder above this package on sys.path; set ``Picamera2.video`` first.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2


class Picamera2:
    video: ClassVar[str] = ""
    instances: ClassVar[list[Picamera2]] = []
    cameras: ClassVar[int] = 1

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= self.cameras:
            raise IndexError("list index out of range")  # what picamera2 raises for no camera
        self.camera_num = camera_num
        self.calls: list[str] = []
        self.config: dict[str, Any] | None = None
        self._capture: cv2.VideoCapture | None = None
        Picamera2.instances.append(self)

    def create_video_configuration(self, main: dict | None = None, **kwargs: Any) -> dict:
        self.calls.append("create_video_configuration")
        return {"use_case": "video", "main": dict(main or {}), **kwargs}

    def create_preview_configuration(self, main: dict | None = None, **kwargs: Any) -> dict:
        self.calls.append("create_preview_configuration")
        return {"use_case": "preview", "main": dict(main or {}), **kwargs}

    def configure(self, config: dict) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        if self.config is None:
            raise RuntimeError("Camera has not been configured")
        self.calls.append("start")
        self._capture = cv2.VideoCapture(self.video)

    def capture_array(self, name: str = "main"):
        if self._capture is None:
            raise RuntimeError("Camera is not running")
        ok, frame = self._capture.read()
        if not ok:
            raise RuntimeError("camera frame timeout")
        width, height = self.config["main"].get("size", (frame.shape[1], frame.shape[0]))
        if (frame.shape[1], frame.shape[0]) != (width, height):
            frame = cv2.resize(frame, (width, height))
        return frame

    def stop(self) -> None:
        self.calls.append("stop")
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def close(self) -> None:
        self.calls.append("close")

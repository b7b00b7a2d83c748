"""The Raspberry Pi camera through picamera2 (libcamera), behind the frame-source interface."""

from __future__ import annotations

import time
from typing import Any

from ecolens.core.errors import MissingDependencyError
from ecolens.edge.daemon.sources.base import Frame, SourceError

INSTALL_HINT = (
    "picamera2 is not installed: on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create the virtual environment with --system-site-packages"
)


class PiCameraSource:
    """``picamera2`` or ``picamera2:N`` (camera number N). Frames are captured as RGB888,
    which libcamera lays out in memory as B, G, R: exactly OpenCV's BGR order."""

    live = True

    def __init__(
        self, camera_num: int = 0, width: int = 640, height: int = 480, fps: float | None = None
    ) -> None:
        self.camera_num = camera_num
        self.name = f"picamera2:{camera_num}"
        self.size = (width, height)
        self.fps = fps
        self._camera: Any = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise MissingDependencyError(INSTALL_HINT) from exc
        self.close()
        try:
            camera = Picamera2(self.camera_num)
        except Exception as exc:  # libcamera raises plain RuntimeError/IndexError
            raise SourceError(f"cannot open Pi camera {self.camera_num}: {exc}") from exc
        try:
            controls = {"FrameRate": float(self.fps)} if self.fps else {}
            config = camera.create_video_configuration(
                main={"size": self.size, "format": "RGB888"}, controls=controls
            )
            camera.configure(config)
            camera.start()
        except Exception as exc:
            camera.close()
            raise SourceError(f"cannot start Pi camera {self.camera_num}: {exc}") from exc
        self._camera = camera

    def read(self) -> Frame | None:
        if self._camera is None:
            raise SourceError(f"{self.name} is not open")
        try:
            pixels = self._camera.capture_array("main")
        except Exception as exc:
            raise SourceError(f"{self.name} stopped delivering frames: {exc}") from exc
        if pixels.ndim == 3 and pixels.shape[2] == 4:  # XRGB8888 layouts carry a padding byte
            pixels = pixels[:, :, :3]
        return Frame(pixels, "BGR", t=time.monotonic())

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.stop()
            finally:
                camera.close()

"""The one way an image becomes model input: used by training, conversion checks, classify,
the daemon and the HTTP API alike, so every path feeds the model the same tensor.

Images travel as RGB ``uint8`` arrays (H, W, 3). Camera frames from OpenCV are BGR and go
through :func:`from_bgr` first.
"""

from __future__ import annotations

import glob
import io
import warnings
from pathlib import Path

import cv2
import numpy as np
from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.metadata import InputSpec
from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

# 40 MP: far above any camera a bin carries, far below what would exhaust a Pi's memory.
DEFAULT_MAX_PIXELS = 40_000_000


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone, so a decompression bomb is never decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                return header.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(f"image is too large in pixels: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for garbage input
        raise ImageError("data is not a decodable image (JPEG, PNG, BMP, WebP, ...)") from exc


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to RGB uint8, refusing oversize or undecodable input."""
    if not data:
        raise ImageError("image data is empty")
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError("data is not a decodable image (JPEG, PNG, BMP, WebP, ...)")
    return from_bgr(bgr)


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    try:
        return decode_image(data, max_pixels)
    except ImageError as exc:
        raise type(exc)(f"{path}: {exc}") from exc


def is_image_path(path: str | Path) -> bool:
    """Judged by the name, as every folder walk and source choice here does."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def find_images(root: str | Path) -> list[Path]:
    """Every image file below a folder (recursively) or matching a glob pattern, sorted, so
    runs are reproducible."""
    path = Path(root)
    if path.is_dir():
        found = [p for p in path.rglob("*") if p.is_file()]
    else:
        found = [Path(p) for p in glob.glob(str(root), recursive=True)]
    return sorted(p for p in found if is_image_path(p))


def from_bgr(frame: np.ndarray) -> np.ndarray:
    """Convert an OpenCV BGR(A)/grey frame to RGB uint8."""
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def center_crop_to_aspect(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Largest centred crop with the target's aspect ratio."""
    h, w = rgb.shape[:2]
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        x0 = (w - new_w) // 2
        return rgb[:, x0 : x0 + new_w]
    new_h = max(1, round(w / target))
    y0 = (h - new_h) // 2
    return rgb[y0 : y0 + new_h]


def resize_for_model(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize an RGB uint8 image to the model's input size following its resize policy.

    Bilinear when enlarging, area averaging when shrinking (a 640x480 camera frame shrunk
    bilinearly would alias).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected an RGB image of shape (H, W, 3), got {rgb.shape}")
    if spec.resize == "center_crop":
        rgb = center_crop_to_aspect(rgb, spec.width, spec.height)
    h, w = rgb.shape[:2]
    if (h, w) == (spec.height, spec.width):
        return np.ascontiguousarray(rgb)
    shrinking = h * w > spec.height * spec.width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(rgb, (spec.width, spec.height), interpolation=interpolation)


def normalize(resized: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Apply the colour order and (x - mean) / std of the model's metadata, as float32."""
    pixels = resized.astype(np.float32)
    if spec.color_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (pixels - mean) / std


def to_model_input(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 image of any size -> float32 (H, W, 3) tensor the model expects."""
    return normalize(resize_for_model(rgb, spec), spec)

"""The one way an image becomes model input: used by training, conversion checks, classify,
the daemon and the HTTP API alike, so every path feeds the model the same tensor.

Images travel as RGB ``uint8`` arrays (H, W, 3). Camera frames from OpenCV are BGR and go
through :func:`from_bgr` first.

Encoded images (files, HTTP bodies) take the cheaper road: the header is read once
(:func:`inspect_image`: size limits before any pixel is decoded), then one OpenCV decode, at a
reduced resolution (libjpeg's DCT scaling) when the frame is at least twice the model input, then
the resize and, when the model's metadata allows it (mean 0, std 1, a quantization scale of 1),
uint8 pixels go straight to the integer input tensor without a float pass
(:func:`quantized_model_input`).
"""

from __future__ import annotations

import glob
import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.metadata import InputSpec

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})

# Letterbox bars: mid grey, which the reference network's first layer maps to 0, the same
# value its convolutions pad with, so bars read as "nothing here" rather than as a black frame.
LETTERBOX_PAD = 127

# 40 MP: far above any camera a bin carries, far below what would exhaust a Pi's memory.
DEFAULT_MAX_PIXELS = 40_000_000


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UNDECODABLE = "data is not a decodable image (JPEG, PNG, BMP, WebP, ...)"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8, CC are not.
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD9)) | {0x01}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's frame header, walking the marker segments before it;
    None when there is none to find (not a JPEG, cut short, or a height given later by DNL)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            at += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in JPEG_FRAME_MARKERS:
            if at + 9 > len(data) or length < 7:
                return None
            height, width = struct.unpack_from(">HH", data, at + 5)
            return (width, height) if width and height else None
        at += 2 + length
    return None


def png_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR, which the format puts first."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack_from(">II", data, 16)
    return (width, height) if width and height else None


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone, so a decompression bomb is never decoded.
    JPEG and PNG (what cameras and phones send) are read here without Pillow, whose import
    and plugin loading cost more than a cold `ecolens classify`'s inference; other formats
    (BMP, WebP, ...) and anything these readers cannot place go through Pillow."""
    size = jpeg_size(data) or png_size(data)
    if size is not None:
        return size
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:
                width, height = header.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooLargeError(f"image is too large in pixels: {exc}") from exc
    except Exception as exc:  # Pillow raises many types for garbage input
        raise ImageError(UNDECODABLE) from exc
    if width <= 0 or height <= 0:  # Pillow's stub formats (HDF5, GRIB, ...) open with no size
        raise ImageError(UNDECODABLE)
    return width, height


@dataclass(frozen=True)
class EncodedImage:
    """Encoded bytes whose header has been read and checked: the size is known before decoding."""

    data: bytes
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> EncodedImage:
    """Read the header once; refuse empty, undecodable or oversize images before decoding."""
    if not data:
        raise ImageError("image data is empty")
    width, height = image_size(data)
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is too large: {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    return EncodedImage(data, width, height)


# OpenCV's reduced-resolution reads: JPEG scales in the DCT (less work, less memory).
REDUCED_READS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def reduction_for(width: int, height: int, spec: InputSpec | None) -> tuple[int, int]:
    """The largest reduced read (factor, imread flag) that still leaves at least the model's
    input size in both directions (after a centre crop when the model asks for one), so the
    final resize only ever shrinks."""
    if spec is None:
        return 1, cv2.IMREAD_COLOR
    need_w, need_h = spec.width, spec.height
    if spec.resize == "center_crop":
        target = spec.width / spec.height
        width, height = (
            (round(height * target), height) if width / height > target else (width, round(width / target))
        )
    elif spec.resize == "letterbox":  # only the fitted part is scaled: a 16:9 frame needs 224x126
        need_w, need_h = letterbox_size(width, height, spec.width, spec.height)
    for factor, flag in REDUCED_READS:
        if width // factor >= need_w and height // factor >= need_h:
            return factor, flag
    return 1, cv2.IMREAD_COLOR


def decode_bgr(image: EncodedImage, spec: InputSpec | None = None) -> np.ndarray:
    """The one decode of an inspected image: BGR(A)/grey as OpenCV gives it, reduced when the
    model input is much smaller than the image."""
    _factor, flag = reduction_for(image.width, image.height, spec)
    bgr = cv2.imdecode(np.frombuffer(image.data, dtype=np.uint8), flag)
    if bgr is None:
        raise ImageError(UNDECODABLE)
    return bgr


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to full-size RGB uint8, refusing oversize or undecodable input."""
    return from_bgr(decode_bgr(inspect_image(data, max_pixels)))


def decode_for_model(image: EncodedImage, spec: InputSpec) -> np.ndarray:
    """Encoded image -> RGB uint8 at the model's input size: one (reduced) decode, the resize
    done on the decoder's BGR pixels and the colour conversion on the small result (the
    resize treats channels independently, so the order of the two does not change a value)."""
    bgr = decode_bgr(image, spec)
    if bgr.ndim == 3 and bgr.shape[2] == 3:
        return from_bgr(resize_for_model(bgr, spec))
    return resize_for_model(from_bgr(bgr), spec)


def read_image_file(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> EncodedImage:
    """Read and inspect an image file (header only), naming the file in any error."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read image {path}: {exc.strerror or exc}") from exc
    try:
        return inspect_image(data, max_pixels)
    except ImageError as exc:
        raise type(exc)(f"{path}: {exc}") from exc


def load_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as full-size RGB uint8."""
    image = read_image_file(path, max_pixels)
    try:
        return from_bgr(decode_bgr(image))
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


def scale_to(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking by 2x or more (a 640x480 camera frame taken bilinearly to
    224 would skip pixels and alias), bilinear otherwise: below 2x every source pixel already
    contributes, and OpenCV's area path for a non-integer ratio costs six times as much (0.29 vs
    0.05 ms for a reduced-decoded 320x240 frame -> 224x168, a tenth of a request's CPU)."""
    h, w = rgb.shape[:2]
    if (h, w) == (height, width):
        return np.ascontiguousarray(rgb)
    interpolation = cv2.INTER_AREA if w >= 2 * width or h >= 2 * height else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interpolation)


def letterbox_size(w: int, h: int, width: int, height: int) -> tuple[int, int]:
    """The size a w x h image is scaled to inside a width x height letterbox."""
    scale = min(width / w, height / h)
    return min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))


def letterbox(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to fit inside width x height keeping the aspect ratio, pad the rest with
    LETTERBOX_PAD, centred: a 16:9 camera frame is not squashed into a different object shape."""
    h, w = rgb.shape[:2]
    new_w, new_h = letterbox_size(w, h, width, height)
    canvas = np.full((height, width, 3), LETTERBOX_PAD, dtype=np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    canvas[y0 : y0 + new_h, x0 : x0 + new_w] = scale_to(rgb, new_w, new_h)
    return canvas


def resize_for_model(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize an RGB uint8 image to the model's input size following its resize policy
    (``stretch``, ``center_crop`` or ``letterbox``, from the model's metadata)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"expected an RGB image of shape (H, W, 3), got {rgb.shape}")
    if spec.resize == "letterbox":
        return letterbox(rgb, spec.width, spec.height)
    if spec.resize == "center_crop":
        rgb = center_crop_to_aspect(rgb, spec.width, spec.height)
    return scale_to(rgb, spec.width, spec.height)


def normalize(resized: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Apply the colour order (or grey conversion) and (x - mean) / std of the model's metadata,
    as float32 of shape (H, W, channels)."""
    if spec.channels == 1:
        grey = cv2.cvtColor(resized, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., np.newaxis]
        return (grey - np.float32(spec.mean[0])) / np.float32(spec.std[0])
    pixels = resized.astype(np.float32)
    if spec.color_order == "BGR":
        pixels = pixels[..., ::-1]
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (pixels - mean) / std


def to_model_input(rgb: np.ndarray, spec: InputSpec) -> np.ndarray:
    """RGB uint8 image of any size -> float32 (H, W, channels) tensor the model expects."""
    return normalize(resize_for_model(rgb, spec), spec)


@dataclass(frozen=True)
class InputQuantization:
    """The model input tensor's type and (scale, zero point): real = (q - zero_point) * scale."""

    dtype: np.dtype
    scale: float = 1.0
    zero_point: int = 0

    def quantize(self, tensor: np.ndarray) -> np.ndarray:
        """float32 -> the input dtype (round to nearest, saturating)."""
        if self.dtype == np.float32:
            return tensor.astype(np.float32, copy=False)
        info = np.iinfo(self.dtype)
        quantized = np.round(tensor / self.scale + self.zero_point)
        return np.clip(quantized, info.min, info.max).astype(self.dtype)


def integer_offset(spec: InputSpec, quantization: InputQuantization) -> int | None:
    """When (x - mean) / std / scale + zero_point is ``x + offset`` for every uint8 x (mean and
    std 0 and 1 style, scale 1), the offset; None when the float pass is needed."""
    if quantization.dtype not in (np.int8, np.uint8) or quantization.scale != 1.0 or spec.channels != 3:
        return None
    if any(s != 1.0 for s in spec.std) or len(set(spec.mean)) != 1 or spec.mean[0] != int(spec.mean[0]):
        return None
    return int(quantization.zero_point - spec.mean[0])


def quantized_model_input(
    resized: np.ndarray, spec: InputSpec, quantization: InputQuantization
) -> np.ndarray:
    """RGB uint8 at the model's size -> the tensor in the input's own dtype. uint8 -> int8 with
    an offset of -128 is one XOR of the sign bit; other integer offsets one saturating add;
    anything else the float normalisation followed by the generic quantization."""
    offset = integer_offset(spec, quantization)
    if offset is None:
        return quantization.quantize(normalize(resized, spec))
    pixels = resized[..., ::-1] if spec.color_order == "BGR" else resized
    if quantization.dtype == np.int8 and offset == -128:
        return np.bitwise_xor(pixels, 0x80).view(np.int8)
    if quantization.dtype == np.uint8 and offset == 0:
        return np.ascontiguousarray(pixels)
    info = np.iinfo(quantization.dtype)
    return np.clip(pixels.astype(np.int16) + offset, info.min, info.max).astype(quantization.dtype)

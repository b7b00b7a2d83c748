"""The fast preprocessing roads (one header read, one reduced decode, uint8 -> int8 without a
float pass) give the model exactly the tensor the float reference path gives on the shipped
sample images, and the same results from `classify`, the API and the daemon's frame path."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from ecolens.core.classifier import Classifier, to_probabilities
from ecolens.core.errors import ImageError, ImageTooLargeError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import (
    InputQuantization,
    decode_for_model,
    inspect_image,
    integer_offset,
    load_image,
    normalize,
    quantized_model_input,
    reduction_for,
    resize_for_model,
    scale_to,
    to_model_input,
)
from PIL import Image


@pytest.fixture(scope="module")
def classifier(reference_model: Path) -> Classifier:
    return Classifier(reference_model, threads=1)


@pytest.fixture(scope="module")
def samples(eval_dir: Path) -> list[Path]:
    paths = sorted(eval_dir.rglob("*.jpg"))
    assert len(paths) >= 150
    return paths


def reference_tensor(classifier: Classifier, path: Path) -> np.ndarray:
    """The path every image took before: full decode, float normalisation, generic quantize."""
    spec = classifier.metadata.input
    return classifier.model.input_quantization.quantize(to_model_input(load_image(path), spec))


def test_direct_int8_tensor_equals_the_float_path_on_every_sample(classifier, samples):
    spec = classifier.metadata.input
    quantization = classifier.model.input_quantization
    assert integer_offset(spec, quantization) == -128  # the shipped model takes the fast road
    for path in samples:
        fast = quantized_model_input(
            decode_for_model(inspect_image(path.read_bytes()), spec), spec, quantization
        )
        assert fast.dtype == np.int8
        assert np.array_equal(fast, reference_tensor(classifier, path)), path.name


def test_classify_file_bytes_and_frames_give_the_same_scores_as_before(classifier, samples):
    for path in samples[::10]:
        before = classifier.model.run(reference_tensor(classifier, path))
        expected = classifier.result(to_probabilities(before, classifier.metadata.output), 0.0)["scores"]
        assert classifier.classify_file(path)["scores"] == expected
        assert classifier.classify_bytes(path.read_bytes())["scores"] == expected
        assert classifier.classify(load_image(path))["scores"] == expected  # the daemon's road


@pytest.mark.parametrize(
    ("spec", "quantization", "offset"),
    [
        (InputSpec(16, 16), InputQuantization(np.dtype(np.int8), 1.0, -128), -128),
        (InputSpec(16, 16), InputQuantization(np.dtype(np.uint8), 1.0, 0), 0),
        (InputSpec(16, 16, mean=(127.0, 127.0, 127.0)), InputQuantization(np.dtype(np.int8), 1.0, 0), -127),
        (InputSpec(16, 16, color_order="BGR"), InputQuantization(np.dtype(np.int8), 1.0, -128), -128),
        (InputSpec(16, 16, std=(2.0, 2.0, 2.0)), InputQuantization(np.dtype(np.int8), 1.0, -128), None),
        (InputSpec(16, 16), InputQuantization(np.dtype(np.int8), 0.5, -128), None),
        (InputSpec(16, 16, mean=(1.0, 2.0, 3.0)), InputQuantization(np.dtype(np.int8), 1.0, 0), None),
        (InputSpec(16, 16), InputQuantization(np.dtype(np.float32), 0.0, 0), None),
    ],
)
def test_integer_road_matches_the_float_road_for_every_uint8_value(spec, quantization, offset):
    assert integer_offset(spec, quantization) == offset
    every_value = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3) % 256
    pixels = resize_for_model(every_value.astype(np.uint8), InputSpec(16, 16))
    fast = quantized_model_input(pixels, spec, quantization)
    slow = quantization.quantize(normalize(pixels, spec))
    assert fast.dtype == slow.dtype
    assert np.array_equal(fast, slow)


def jpeg_bytes(width: int, height: int, source: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(source).convert("RGB").resize((width, height), Image.BICUBIC).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_reduced_decode_is_chosen_only_when_the_frame_is_at_least_twice_the_input():
    spec = InputSpec(160, 160)
    assert reduction_for(640, 480, spec)[0] == 2
    assert reduction_for(1280, 960, spec)[0] == 4
    assert reduction_for(4000, 3000, spec)[0] == 8
    assert reduction_for(319, 480, spec)[0] == 1
    assert reduction_for(112, 84, spec)[0] == 1
    assert reduction_for(1280, 640, InputSpec(160, 160, resize="center_crop"))[0] == 4


def test_a_letterboxed_wide_frame_is_decoded_at_the_size_its_fitted_part_needs():
    """A 1280x720 frame in a 224 letterbox becomes 224x126: a quarter-size read (320x180)
    still covers it, although 180 is less than the model's 224 rows."""
    letterboxed = InputSpec(224, 224, resize="letterbox")
    assert reduction_for(1280, 720, letterboxed)[0] == 4
    assert reduction_for(1280, 720, InputSpec(224, 224))[0] == 2  # a stretch needs 224 rows
    assert reduction_for(640, 480, letterboxed)[0] == 2
    assert reduction_for(447, 300, letterboxed)[0] == 1


def test_shrinking_by_less_than_two_is_bilinear_and_by_two_or_more_area_averaged():
    """Bilinear below 2x (every source pixel contributes; OpenCV's area path for a non-integer
    ratio costs ~6x), area averaging from 2x on, where bilinear would skip pixels."""
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert np.array_equal(
        scale_to(small, 224, 168), cv2.resize(small, (224, 168), interpolation=cv2.INTER_LINEAR)
    )
    large = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert np.array_equal(
        scale_to(large, 224, 168), cv2.resize(large, (224, 168), interpolation=cv2.INTER_AREA)
    )
    assert not np.array_equal(
        scale_to(large, 224, 168), cv2.resize(large, (224, 168), interpolation=cv2.INTER_LINEAR)
    )


def test_reduced_decode_of_640x480_frames_gives_the_same_labels(classifier, samples):
    """Halving in libjpeg's DCT before the area resize changes pixels slightly, never the answer
    on the samples (scores within 0.06)."""
    spec = classifier.metadata.input
    worst = 0.0
    for path in samples[::6]:
        data = jpeg_bytes(640, 480, path)
        image = inspect_image(data)
        reduced = decode_for_model(image, spec)
        full = resize_for_model(load_image_bytes(data), spec)
        assert reduced.shape == full.shape == (spec.height, spec.width, 3)
        fast, slow = classifier.predict_resized(reduced)[0], classifier.predict_resized(full)[0]
        assert int(np.argmax(fast)) == int(np.argmax(slow)), path.name
        worst = max(worst, float(np.abs(fast - slow).max()))
    assert worst < 0.06


def load_image_bytes(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_header_checks_come_before_any_decode():
    from tests.support.api_server import png_header

    with pytest.raises(ImageTooLargeError, match="too large"):
        inspect_image(png_header(100_000, 100_000), max_pixels=16_000_000)
    with pytest.raises(ImageTooLargeError, match="2000x1000"):
        inspect_image(png_header(2000, 1000), max_pixels=1_000_000)
    with pytest.raises(ImageError):
        inspect_image(b"")
    with pytest.raises(ImageError):
        inspect_image(b"not an image at all")
    # Pillow's stub plugins open an HDF5 (or GRIB, BUFR) signature with a 0x0 size: refused
    # here, before a letterbox divides by it (CI's fuzz found this one as a 500)
    for stub in (b"\x89HDF\r\n\x1a\n", b"GRIB" + bytes(12)):
        with pytest.raises(ImageError, match="not a decodable image"):
            inspect_image(stub)
    truncated = inspect_image(png_header(64, 64))  # header fine, pixels missing: decode says so
    with pytest.raises(ImageError):
        decode_for_model(truncated, InputSpec(160, 160))


def pillow_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def encoded(size: tuple[int, int], fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 120, 40)).save(out, format=fmt, **options)
    return out.getvalue()


def test_header_sizes_without_pillow_agree_with_pillow(samples):
    """JPEG and PNG sizes are read without importing Pillow (cold start): the same sizes as
    Pillow gives, on the shipped photos and on progressive, EXIF-carrying and odd sizes."""
    from ecolens.core.preprocess import image_size, jpeg_size, png_size

    for path in samples[:40]:
        data = path.read_bytes()
        assert jpeg_size(data) == pillow_size(data), path.name
    exif = Image.Exif()
    exif[0x010F] = "EcoLens test camera"  # an APP1 segment before the frame header
    cases = [
        encoded((640, 480), "JPEG"),
        encoded((1, 1), "JPEG"),
        encoded((4000, 3), "JPEG", progressive=True),
        encoded((333, 777), "JPEG", exif=exif.tobytes()),
        encoded((640, 480), "PNG"),
        encoded((70_000, 1), "PNG"),
    ]
    for data in cases:
        assert image_size(data) == pillow_size(data)
        assert (jpeg_size(data) or png_size(data)) == pillow_size(data)
    # Other formats go through Pillow; what no reader can place is one clear error.
    assert image_size(encoded((31, 17), "BMP")) == (31, 17)
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None  # a scan before any frame header
    assert jpeg_size(encoded((64, 48), "JPEG")[:20]) is None  # cut short
    for garbage in (b"\xff\xd8" + b"\x00" * 40, b"\x89PNG\r\n\x1a\n" + b"\x00" * 10):
        with pytest.raises(ImageError, match="not a decodable image"):
            image_size(garbage)


def test_classify_does_not_import_pillow(tmp_path, reference_model, samples):
    """`ecolens classify` on a JPEG starts without Pillow (its import and plugins cost more
    than the inference of one image)."""
    import subprocess
    import sys

    probe = (
        "import sys; from ecolens.cli import main; code = main(sys.argv[1:]); "
        "print('PIL' in sys.modules, file=sys.stderr); sys.exit(code)"
    )
    command = [sys.executable, "-c", probe, "classify", "--model", str(reference_model), str(samples[0])]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "False"

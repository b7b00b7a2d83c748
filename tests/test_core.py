"""The shared core: metadata, preprocessing, the result contract and config loading."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from ecolens.core.config import ModelSection, Section, load_config
from ecolens.core.contract import make_result, validate_result
from ecolens.core.errors import ConfigError, ImageError, ImageTooLargeError, ModelError
from ecolens.core.metadata import InputSpec, ModelMetadata, embed_metadata, read_metadata
from ecolens.core.mqtt import BrokerSection, broker_overrides, parse_broker_url
from ecolens.core.preprocess import (
    center_crop_to_aspect,
    decode_image,
    from_bgr,
    load_image,
    to_model_input,
)
from PIL import Image

MODEL = {"name": "m", "version": "1", "sha256": "0" * 64}


def metadata(**changes: object) -> ModelMetadata:
    base = dict(
        name="m",
        version="1.2.3",
        labels=("non_plastic", "plastic"),
        input=InputSpec(height=32, width=48, mean=(1.0, 2.0, 3.0), std=(4.0, 5.0, 6.0)),
        positive_label="plastic",
        quantization="int8",
        source_sha256="a" * 64,
    )
    base.update(changes)
    return ModelMetadata(**base)  # type: ignore[arg-type]


def test_metadata_round_trip(tmp_path: Path) -> None:
    meta = metadata()
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_metadata(b"TFL3 flatbuffer bytes", meta))
    assert read_metadata(path) == meta
    assert path.read_bytes().startswith(b"TFL3 flatbuffer bytes")


def test_metadata_missing_or_bad(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(b"no metadata here")
    with pytest.raises(ModelError, match="no EcoLens metadata"):
        read_metadata(plain)
    with pytest.raises(ModelError, match="not found"):
        read_metadata(tmp_path / "absent.tflite")
    with pytest.raises(ModelError, match="two distinct labels"):
        embed_metadata(b"x", metadata(labels=("plastic",)))
    with pytest.raises(ModelError, match="positive label"):
        embed_metadata(b"x", metadata(positive_label="glass"))


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def test_decode_is_rgb_and_lossless_for_png() -> None:
    rgb = np.zeros((10, 20, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # red
    decoded = decode_image(jpeg_bytes(rgb))
    assert decoded.shape == (10, 20, 3)
    assert np.array_equal(decoded, rgb)


def test_decode_rejects_garbage_and_bombs() -> None:
    with pytest.raises(ImageError):
        decode_image(b"")
    with pytest.raises(ImageError):
        decode_image(b"definitely not an image")
    big = jpeg_bytes(np.zeros((300, 400, 3), dtype=np.uint8))
    with pytest.raises(ImageTooLargeError, match="over the limit"):
        decode_image(big, max_pixels=100_000)


def test_to_model_input_normalizes_and_resizes() -> None:
    spec = InputSpec(height=4, width=6, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 5.0))
    rgb = np.full((8, 12, 3), (110, 120, 130), dtype=np.uint8)
    tensor = to_model_input(rgb, spec)
    assert tensor.shape == (4, 6, 3) and tensor.dtype == np.float32
    assert np.allclose(tensor[0, 0], [50.0, 25.0, 20.0])
    bgr_spec = InputSpec(height=4, width=6, color_order="BGR")
    assert np.allclose(to_model_input(rgb, bgr_spec)[0, 0], [130, 120, 110])


def test_center_crop_keeps_aspect() -> None:
    wide = np.zeros((100, 200, 3), dtype=np.uint8)
    assert center_crop_to_aspect(wide, 10, 10).shape[:2] == (100, 100)
    tall = np.zeros((300, 100, 3), dtype=np.uint8)
    assert center_crop_to_aspect(tall, 10, 10).shape[:2] == (100, 100)


def test_camera_frame_and_file_give_the_same_tensor(eval_dir: Path) -> None:
    """A BGR frame from OpenCV and the encoded file preprocess identically."""
    path = next(eval_dir.rglob("*.jpg"))
    spec = InputSpec(height=160, width=160)
    from_file = to_model_input(load_image(path), spec)
    from_camera = to_model_input(from_bgr(cv2.imread(str(path))), spec)
    assert np.array_equal(from_file, from_camera)


def test_result_contract_validates() -> None:
    seen = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    result = make_result(
        ("non_plastic", "plastic"),
        [0.2, 0.8],
        MODEL,
        12.3456,
        seen_at=seen,
        min_confidence=0.9,
        device_id="bin-1",
        event_id="e1",
    )
    validate_result(result, written=True)
    assert result["label"] == "plastic" and result["confidence"] == 0.8
    assert result["uncertain"] is True
    assert result["timestamp"] == "2026-01-02T03:04:05.678Z"
    assert result["inference_ms"] == 12.346
    with pytest.raises(ValueError, match="not contract fields"):
        make_result(("a", "b"), [0.5, 0.5], MODEL, 1.0, colour="red")
    broken = dict(result, confidence=1.5)
    with pytest.raises(jsonschema.ValidationError):
        validate_result(broken)
    # a reader accepts what a newer 1.x writer adds; this release itself writes none of it
    newer = dict(result, contract_version="1.1", bin_temperature_c=31.5)
    validate_result(newer)
    with pytest.raises(jsonschema.ValidationError, match="does not write"):
        validate_result(newer, written=True)
    with pytest.raises(jsonschema.ValidationError):
        validate_result(dict(result, contract_version="2.0"))


class Demo(Section):
    model: ModelSection = ModelSection()
    mqtt: BrokerSection = BrokerSection()


def test_config_file_env_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\nthreads = 2\n[mqtt]\nhost = "file-host"\nport = 1000\n')
    config = load_config(
        Demo,
        path,
        overrides={"mqtt.host": "flag-host", "model.threads": None},
        environ={"ECOLENS_MQTT__PORT": "2000", "ECOLENS_MODEL__MIN_CONFIDENCE": "0.7"},
    )
    assert config.mqtt.host == "flag-host"
    assert config.mqtt.port == 2000
    assert config.model.threads == 2
    assert config.model.min_confidence == 0.7


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[mqtt]\nhots = 'x'\n", "mqtt.hots: unknown setting"),
        ("[mqtt]\nport = 'many'\n", "mqtt.port"),
        ("[mqtt\n", "invalid TOML"),
        ("[model]\nthreads = 0\n", "model.threads"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.").replace("[", r"\[")):
        load_config(Demo, path, environ={})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Demo, tmp_path / "absent.toml", environ={})


def test_broker_urls() -> None:
    assert parse_broker_url("mqtts://u%40x:p%3Aw@broker.lan") == {
        "host": "broker.lan",
        "port": 8883,
        "tls": True,
        "username": "u@x",
        "password": "p:w",
    }
    assert parse_broker_url("mqtt://10.0.0.2:1884")["port"] == 1884
    assert broker_overrides("mqtt://h")["mqtt.host"] == "h"
    for bad in ("http://h", "mqtt://", "mqtt://h:notaport"):
        with pytest.raises(ConfigError):
            parse_broker_url(bad)

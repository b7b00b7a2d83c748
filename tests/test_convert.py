"""ecolens train / convert end to end on real files: every quantization mode, Keras 2 and 3
inputs, validation, atomic writes and every bad input the issue lists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from ecolens.core.classifier import Classifier
from ecolens.core.metadata import read_metadata
from ecolens.models import calibration_dir, eval_dir

pytest.importorskip("tensorflow")

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def ecolens(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"ecolens {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert fragment in errors[0], errors[0]


@pytest.fixture(scope="module")
def scratch_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained by `ecolens train` on the shipped sample images, long enough that its
    scores are not all near 50/50 (then int8 rounding flips labels and agreement is noise) and it
    fits its training photos beyond the majority class (6 epochs sat on that edge: a change of
    resize interpolation tipped it over, and convert rightly refused the model)."""
    out = tmp_path_factory.mktemp("train") / "scratch.h5"
    proc = ecolens(
        "train",
        "--data",
        str(eval_dir()),
        "--out",
        str(out),
        "--backbone",
        "scratch",
        "--size",
        "64",
        "--head-epochs",
        "0",
        "--fine-epochs",
        "12",
        "--learning-rate",
        "3e-3",
        "--name",
        "scratch-test",
        "--model-version",
        "0.1.0",
    )
    assert "validation: balanced accuracy" in proc.stderr
    return out


def test_train_writes_h5_with_metadata_and_metrics(scratch_h5: Path) -> None:
    import json

    import h5py

    with h5py.File(scratch_h5) as handle:
        stored = json.loads(handle.attrs["ecolens_metadata"])
        assert "model_weights" in handle  # a real Keras HDF5 file
    assert stored["labels"] == ["non_plastic", "plastic"]
    assert stored["input"]["height"] == 64
    metrics = json.loads(scratch_h5.with_suffix(".metrics.json").read_text())
    assert metrics["n"] > 0 and len(metrics["confusion_matrix"]) == 2


@pytest.mark.parametrize("mode", ["int8", "float16", "dynamic", "float32"])
def test_each_quantization_mode(scratch_h5: Path, tmp_path: Path, mode: str) -> None:
    out = tmp_path / f"m.{mode}.tflite"
    proc = ecolens(
        "convert", str(scratch_h5), "--quantize", mode, "--out", str(out), "--min-agreement", "0.9"
    )
    assert "top-1 agreement" in proc.stdout
    meta = read_metadata(out)
    assert meta.quantization == mode
    assert meta.labels == ("non_plastic", "plastic")
    assert meta.name == "scratch-test" and meta.version == "0.1.0"
    classifier = Classifier(out)
    expected_dtype = np.int8 if mode == "int8" else np.float32
    assert classifier.model.input_dtype == expected_dtype
    result = classifier.classify_file(next(calibration_dir().rglob("*.jpg")))
    assert result["model"]["quantization"] == mode
    assert abs(sum(result["scores"].values()) - 1.0) < 0.02


def test_sizes_shrink_with_quantization(scratch_h5: Path, tmp_path: Path) -> None:
    sizes = {}
    for mode in ("float32", "int8"):
        out = tmp_path / f"m.{mode}.tflite"
        ecolens("convert", str(scratch_h5), "--quantize", mode, "--out", str(out), "--no-validate")
        sizes[mode] = out.stat().st_size
    assert sizes["int8"] < sizes["float32"] * 0.5


def test_uint8_io(scratch_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.uint8.tflite"
    ecolens("convert", str(scratch_h5), "--out", str(out), "--io-type", "uint8", "--no-validate")
    assert Classifier(out).model.input_dtype == np.uint8


def keras2_model(path: Path) -> None:
    """A Keras-2 (tf_keras) MobileNet-style file: DepthwiseConv2D configs carry `groups`, which
    Keras 3 rejects when loading. Trained briefly (seeded) on the shipped calibration sample:
    an untrained network scores every image near 50/50, so int8 rounding flips labels at random
    and the agreement check would measure noise instead of the conversion."""
    tf_keras = pytest.importorskip("tf_keras")
    from ecolens.core.preprocess import find_images, load_image

    images = find_images(calibration_dir())
    pixels = np.stack([cv2.resize(load_image(p), (48, 48), interpolation=cv2.INTER_AREA) for p in images])
    labels = np.array([int(p.parent.name == "plastic") for p in images])
    tf_keras.utils.set_random_seed(1)
    layers = tf_keras.layers
    inputs = tf_keras.Input((48, 48, 3))
    x = layers.Rescaling(1 / 255.0)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(2, activation="softmax")(x)
    model = tf_keras.Model(inputs, outputs)
    model.compile(tf_keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    weights = {0: 1.0, 1: 4.0}  # plastic is about a fifth of the sample
    model.fit(pixels.astype(np.float32), labels, epochs=30, batch_size=16, class_weight=weights, verbose=0)
    model.save(path)


def test_keras2_h5_loads_through_tf_keras(tmp_path: Path) -> None:
    import keras
    from ecolens.convert.loading import load_keras_model

    source = tmp_path / "keras2.h5"
    keras2_model(source)
    with pytest.raises(Exception):  # noqa: B017 - Keras 3 alone cannot read it
        keras.models.load_model(source, compile=False)
    loaded = load_keras_model(source)
    assert loaded.flavour == "tf_keras"
    out = tmp_path / "keras2.int8.tflite"
    proc = ecolens(
        "convert", str(source), "--labels", "non_plastic,plastic", "--out", str(out),
        "--calibration", str(calibration_dir()),
    )  # fmt: skip
    assert "top-1 agreement" in proc.stdout
    report = json.loads((tmp_path / "keras2.int8.report.json").read_text())
    assert report["metadata"]["extra"]["keras_flavour"] == "tf_keras"
    assert report["validation"]["agreement"] >= 0.98
    assert 0 < report["validation"]["source_metrics"]["recall"] < 1  # it tells the classes apart
    assert read_metadata(out).input.height == 48


def test_keras3_native_format(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((40, 40, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))  # logits
    source = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(source)
    out = tmp_path / "model.float32.tflite"
    ecolens(
        "convert",
        str(source),
        "--quantize",
        "float32",
        "--labels",
        "non_plastic,plastic",
        "--out",
        str(out),
        "--calibration",
        str(calibration_dir()),
        "--allow-degenerate",  # untrained: the proof would rightly refuse it
    )
    assert read_metadata(out).output == "logits"
    result = Classifier(out).classify_file(next(calibration_dir().rglob("*.jpg")))
    assert abs(sum(result["scores"].values()) - 1.0) < 1e-3  # softmax applied on the edge


def test_validation_failure_writes_nothing(scratch_h5: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "m.tflite"
    proc = ecolens("convert", str(scratch_h5), "--out", str(out), "--min-agreement", "1.01", check=False)
    assert_one_line_error(proc, "below")
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.report.json"]


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(ecolens("convert", str(tmp_path / "nope.h5"), check=False), "not found")


def test_not_a_keras_file(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.h5"
    bogus.write_bytes(b"this is not HDF5" * 100)
    assert_one_line_error(ecolens("convert", str(bogus), check=False), "not a Keras model file")


def test_output_not_a_class_vector(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(2, 3, padding="same")(inputs)
    source = tmp_path / "segmenter.h5"
    keras.Model(inputs, outputs).save(source)
    proc = ecolens("convert", str(source), "--labels", "a,b", check=False)
    assert_one_line_error(proc, "not a class vector")


def test_labels_do_not_match_outputs(scratch_h5: Path, tmp_path: Path) -> None:
    proc = ecolens(
        "convert", str(scratch_h5), "--labels", "a,b,c", "--out", str(tmp_path / "x.tflite"), check=False
    )
    assert_one_line_error(proc, "3 labels")
    assert not (tmp_path / "x.tflite").exists()


def test_missing_labels(tmp_path: Path) -> None:
    source = tmp_path / "nolabels.h5"
    keras2_model(source)
    assert_one_line_error(ecolens("convert", str(source), check=False), "--labels")


def test_empty_calibration_folder(scratch_h5: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = ecolens("convert", str(scratch_h5), "--calibration", str(empty), check=False)
    assert_one_line_error(proc, "no images")


def test_unreadable_calibration_image(scratch_h5: Path, tmp_path: Path) -> None:
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    proc = ecolens(
        "convert", str(scratch_h5), "--calibration", str(folder), "--eval", str(eval_dir()), check=False
    )
    assert_one_line_error(proc, "unreadable calibration image")


def test_too_few_calibration_photos_to_hold_out(scratch_h5: Path, tmp_path: Path) -> None:
    """Without --eval, 30 % of --calibration proves the model: a handful of photos cannot."""
    folder = tmp_path / "few"
    folder.mkdir()
    for path in sorted(calibration_dir().rglob("*.jpg"))[:5]:
        (folder / path.name).write_bytes(path.read_bytes())
    proc = ecolens("convert", str(scratch_h5), "--calibration", str(folder), check=False)
    assert_one_line_error(proc, "too few to hold")


def test_the_positive_label_is_plastic_in_any_case() -> None:
    """A Teachable Machine export's "Plastic" is the class whose F1 the report gives; with no
    plastic class there is none to guess (the report falls back to the last label, said there)."""
    from ecolens.convert.embedded import default_positive_label

    assert default_positive_label(("Paper", "Plastic", "Wood")) == "Plastic"
    assert default_positive_label(("non_plastic", " PLASTIC ")) == " PLASTIC "
    assert default_positive_label(("cardboard", "glass", "plastics")) is None

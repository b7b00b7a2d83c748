"""A public model as its user has it: the Teachable Machine export in
tests/data/public/teachable-machine-waste4 (real ImageNet MobileNetV2 weights, MIT License),
converted the way the guide says (labels.txt beside it, `--calibration` with photos of its four
materials) and compared with the source fed its own preprocessing on photos calibration never
saw. Its full int8 loses about one answer in ten; int8-selective must keep the answers (#24)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from ecolens.core.classifier import Classifier
from ecolens.core.metadata import read_metadata
from ecolens.core.preprocess import find_images, load_image
from ecolens.models import calibration_dir, eval_dir

pytest.importorskip("tensorflow")

from ecolens.convert.loading import load_keras_model  # noqa: E402
from ecolens.convert.validate import margins, source_inputs  # noqa: E402

from tests.support.convert_cli import convert_in_process  # noqa: E402
from tests.support.domains import WASTE4  # noqa: E402

PUBLIC = Path(__file__).parent / "data" / "public"
EXPORT = PUBLIC / "teachable-machine-waste4"


def calibration_folder(out: Path) -> Path:
    """out/<material>/: the shipped calibration photos of the four materials and 240 more
    TrashNet photos of them (tests/data/public/trashnet-waste4); no copies, no eval photos."""
    for material in WASTE4:
        (out / material).mkdir(parents=True)
        for folder in (calibration_dir() / material, PUBLIC / "trashnet-waste4" / material):
            for path in find_images(folder):
                shutil.copy(path, out / material / path.name)
    return out


def unseen_photos() -> list[Path]:
    """The shipped eval photos of its four materials: validation-split, never calibrated on."""
    names = {path.name for path in find_images(PUBLIC / "trashnet-waste4")}
    return [
        path
        for path in find_images(eval_dir())
        if (path.parent.name == "plastic" or path.name.split("_")[0] in WASTE4)
        and path.name.split("_", 1)[-1] not in names
    ]


def test_teachable_machine_export_keeps_its_answers_in_int8(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("keras_model.h5", "labels.txt"):
        shutil.copy(EXPORT / name, tmp_path / name)
    photos = calibration_folder(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    rc, stdout, err = convert_in_process(
        capsys, "keras_model.h5", "--calibration", "photos", "--out", "waste.tflite"
    )
    assert rc == 0, err[-3000:]
    out = tmp_path / "waste.tflite"
    meta = read_metadata(out)
    report = json.loads((tmp_path / "waste.report.json").read_text())
    assert meta.labels == ("cardboard", "plastic", "glass", "metal")
    assert meta.extra["input_range"] == "-1..1"
    assert meta.quantization in ("int8", "int8-selective"), report["attempts"]
    if meta.quantization == "int8-selective":
        chosen = report["attempts"][-1]
        assert chosen["candidates"][-1]["latency_vs_int8"] <= 1.5
        assert report["validation"]["tflite_bytes"] < 0.6 * (tmp_path / "keras_model.h5").stat().st_size
        assert "kept in float:" in stdout

    rgbs = [load_image(p) for p in unseen_photos()]
    source = load_keras_model(tmp_path / "keras_model.h5").model
    truth = source.predict(source_inputs(rgbs, meta.input), verbose=0)
    edge = np.stack([Classifier(out).predict(rgb)[0] for rgb in rgbs])
    same = truth.argmax(axis=1) == edge.argmax(axis=1)
    decided = margins(truth) > 0.1
    print(
        f"\nreal TM export: {meta.quantization}, {len(rgbs)} unseen photos, agreement "
        f"{same[decided].mean():.3f} decided ({decided.sum()}), {same.mean():.3f} all; "
        f"{report.get('validation', {}).get('tflite_bytes')} bytes; {photos}"
    )
    assert decided.sum() >= 0.8 * len(rgbs)
    # The converter asks 99 % of the decided answers on photos calibration did not use and 98 % in
    # the proof; on these 135 photos one flip is 0.7 %, so a model that truly keeps 98 % shows
    # 96.5-99.5 % here. Full int8 shows 89 %, the old search (first n and worst n) 97.0 %.
    assert same[decided].mean() >= 0.975
    assert same.mean() >= 0.95
    assert any("prove it on more photos of the site" in w for w in report["warnings"])

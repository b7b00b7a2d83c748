"""Models proven on the photos they will see: each archetype (tests/support/corpus.py) converted as
a user would (labels only, `--calibration` with photos of the model's own domain), then compared
with the source model fed its TRUE preprocessing on photos of that domain calibration did not use.
The domains are made here (tests/support/domains.py): optimistic proxies for users' photos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ecolens.core.classifier import Classifier
from ecolens.core.metadata import read_metadata
from ecolens.core.preprocess import load_image
from ecolens.models import eval_dir

pytest.importorskip("tensorflow")
pytest.importorskip("tf_keras")

from tests.support.convert_cli import convert_in_process as convert  # noqa: E402
from tests.support.convert_cli import one_error_line
from tests.support.corpus import (  # noqa: E402
    ARCHETYPES,
    build,
    domain_folder,
    keras_module,
    source_probabilities,
    training_photos,
    unseen_photos,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("domains")


BUILT: dict[str, Path] = {}


def model_path(root: Path, name: str) -> Path:
    if name not in BUILT:
        archetype = ARCHETYPES[name]
        rgbs, truth = training_photos(archetype, root)
        BUILT[name] = build(archetype, root / name, rgbs, truth)
    return BUILT[name]


def report_of(out: Path) -> dict[str, Any]:
    return json.loads(out.with_name(out.name.removesuffix(".tflite") + ".report.json").read_text())


def unseen_agreement(name: str, source: Path, out: Path, root: Path) -> tuple[float, np.ndarray]:
    """Top-1 agreement of the written model with its source fed its true preprocessing, on
    photos of its domain that calibration did not use; and the source's probabilities."""
    archetype = ARCHETYPES[name]
    rgbs = [load_image(p) for p in unseen_photos(archetype, root)]
    model = keras_module(archetype.flavour).models.load_model(source, compile=False)
    truth = source_probabilities(model, archetype, rgbs)
    classifier = Classifier(out)
    edge = np.stack([classifier.predict(rgb)[0] for rgb in rgbs])
    return float(np.mean(truth.argmax(axis=1) == edge.argmax(axis=1))), truth


def test_waste_teachable_machine_export_is_proven_on_its_own_photos(
    root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 4-class waste export (labels.txt `0 cardboard ... 3 metal`): no photos of its own, one
    line asking for them; with them, int8 proven on the held-out part, >= 95 % agreement unseen."""
    source = model_path(root, "tm-waste-4class")
    monkeypatch.chdir(source.parent)
    rc, _, err = convert(capsys, source.name, "--out", "refused.tflite")
    line = one_error_line(err)
    assert rc == 2 and "--calibration" in line and "not an EcoLens model" in line, line
    assert not (source.parent / "refused.tflite").exists()

    photos = domain_folder(ARCHETYPES["tm-waste-4class"], root)
    rc, stdout, err = convert(capsys, source.name, "--out", "waste.tflite", "--calibration", str(photos))
    assert rc == 0, err[-3000:]
    out = source.parent / "waste.tflite"
    report = report_of(out)
    meta = read_metadata(out)
    assert meta.labels == ("cardboard", "plastic", "glass", "metal")
    assert meta.quantization.startswith("int8"), report["attempts"]
    assert "held out from calibration" in report["photos"]
    assert report["proof"]["kind"] == "labelled" and report["proof"]["failure"] is None
    top1, _ = unseen_agreement("tm-waste-4class", source, out, root)
    print(f"\ntm-waste-4class: {meta.quantization}, unseen agreement {top1:.3f}")
    assert top1 >= 0.95


def test_one_class_present_reports_its_recall_and_does_not_refuse(
    root: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--eval on the shipped samples: only `plastic` names one of the four labels. Its recall is
    reported; no floor of 1/1 + 0.05 that nothing can pass."""
    source = model_path(root, "tm-waste-4class")
    monkeypatch.chdir(source.parent)
    photos = domain_folder(ARCHETYPES["tm-waste-4class"], root)
    rc, _, err = convert(
        capsys, source.name, "--out", "one.tflite", "--calibration", str(photos), "--eval", str(eval_dir()),
        "--quantize", "dynamic",
    )  # fmt: skip
    assert rc == 0, err[-3000:]
    verdict = report_of(source.parent / "one.tflite")["proof"]
    assert verdict["kind"] == "labelled, one class (plastic)" and verdict["failure"] is None, verdict
    assert 0.0 <= verdict["recall"] <= 1.0


def test_overconfident_model_of_another_domain_is_written(root: Path, capsys: pytest.CaptureFixture) -> None:
    """A well-trained two-class model of drawn scenes: confident is not broken. It answers alike
    under 0..1, -1..1 and 0..255, so without the range the converter asks for it in one line; its
    user states it (the stated range is cross-checked, then the proof runs on the saturated answers)."""
    archetype = ARCHETYPES["overconfident-shapes"]
    source = model_path(root, "overconfident-shapes")
    photos = domain_folder(archetype, root)
    out = source.parent / "shapes.tflite"
    rc, _, err = convert(
        capsys, str(source), "--out", str(out), "--labels", "dots,bars", "--calibration", str(photos)
    )
    line = one_error_line(err)
    assert rc == 2 and "cannot tell the input range" in line and "--input-range" in line, line
    rc, _, err = convert(
        capsys, str(source), "--out", str(out), "--labels", "dots,bars", "--calibration", str(photos),
        *archetype.extra_flags,
    )  # fmt: skip
    assert rc == 0, err[-3000:]
    assert read_metadata(out).extra["input_range"] == "0..1"
    top1, truth = unseen_agreement("overconfident-shapes", source, out, root)
    assert float(np.median(truth.max(axis=1))) > 0.99  # it really is overconfident
    assert len(set(truth.argmax(axis=1))) == 2
    print(f"\noverconfident-shapes: {read_metadata(out).quantization}, unseen agreement {top1:.3f}")
    assert top1 >= 0.95


def test_model_that_answers_one_class_under_its_true_range_is_written_with_a_warning(
    root: Path, capsys: pytest.CaptureFixture
) -> None:
    """The user states the true range; the source collapses the same way under it: the model's
    property, warned about in the report and on stderr, and the model is written."""
    name = "one-class-garbage"
    source = model_path(root, name)
    archetype = ARCHETYPES[name]
    out = source.parent / "garbage.tflite"
    rc, stdout, err = convert(
        capsys, str(source), "--out", str(out), "--labels", ",".join(archetype.labels),
        "--calibration", str(domain_folder(archetype, root)), *archetype.extra_flags,
    )  # fmt: skip
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    warnings = [line for line in err.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and "a property of the model" in warnings[0], err[-2000:]
    report = report_of(out)
    assert report["warnings"] and "property of the model" in report["warnings"][0]
    assert "WARNING" in stdout
    top1, truth = unseen_agreement(name, source, out, root)
    assert set(truth.argmax(axis=1)) == {0}  # the source itself answers one class
    assert top1 >= 0.95


def test_inspect_never_judges_a_foreign_model_on_waste_photos(
    root: Path, capsys: pytest.CaptureFixture
) -> None:
    """`ecolens inspect` of a model that is not EcoLens's own: without --photos it says what the
    file says (the Teachable Machine graph: -1..1) and that it did not check it against photos;
    with photos of its own domain, the data check confirms it."""
    from ecolens.cli import main

    source = model_path(root, "tm-waste-4class")
    assert main(["inspect", str(source), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["input_range"] == "-1..1" and "--photos" in plain["input_range_checked"], plain
    photos = domain_folder(ARCHETYPES["tm-waste-4class"], root)
    assert main(["inspect", str(source), "--json", "--photos", str(photos)]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert checked["input_range"] == "-1..1" and "input_range_checked" not in checked, checked

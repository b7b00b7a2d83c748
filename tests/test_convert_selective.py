"""int8-selective on a real small Keras model: one calibration, each layer's sensitivity (its int8
alone against all in float), candidates that keep the most sensitive layers in float, the screen
on the calibration photos and the latency limit (the converted models' fidelity on photos of
their own domain is tested in tests/test_convert_domain.py and tests/test_convert_public.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ecolens.convert import attempts
from ecolens.convert.selective import KEPT_STEPS, layer_names, ranked, steps
from ecolens.models import calibration_dir

DUMP = """op_name,tensor_idx,scale,mean_squared_error,tensor_name
CONV_2D,5,0.1,0.0001,conv1
DEPTHWISE_CONV_2D,9,0.1,0.0025,dw1
CONV_2D,7,0.1,0.0004,conv0
ADD,15,0.0,0.5,no_scale
CONV_2D,20,0.1,0.0009,head
"""


def test_layers_come_in_graph_order_and_only_quantized_ones() -> None:
    assert layer_names(DUMP) == ["conv1", "conv0", "dw1", "head"]


def test_the_most_sensitive_layer_comes_first_ties_in_graph_order() -> None:
    assert ranked({"a": 0.1, "b": 0.5, "c": 0.1, "d": 0.0}) == ["b", "a", "c", "d"]


def test_steps_grow_and_never_keep_every_layer() -> None:
    assert steps(10) == [1, 2, 4, 8]
    assert steps(2) == [1]
    assert steps(1) == [1]
    assert steps(1000) == list(KEPT_STEPS)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained a few epochs on the shipped photos (plastic vs the rest)."""
    tf_keras = pytest.importorskip("tf_keras")
    from tests.support.corpus import photos, resized, small_cnn, zero_one

    rgbs, truth = photos()
    model = small_cnn(tf_keras, 48)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(zero_one(resized(rgbs, 48)), truth, epochs=6, verbose=0)
    path = tmp_path_factory.mktemp("selective") / "small.h5"
    model.save(path)
    (path.parent / "labels.txt").write_text("non_plastic\nplastic\n")
    return path


def convert_selective(path: Path, capsys: pytest.CaptureFixture, out: str) -> tuple[int, dict, str]:
    from tests.support.convert_cli import convert_in_process

    rc, _, err = convert_in_process(
        capsys, str(path), "--quantize", "int8-selective", "--out", str(path.parent / out),
        "--calibration", str(calibration_dir()), "--input-range", "0..1",
    )  # fmt: skip
    report_path = path.parent / out.replace(".tflite", ".report.json")
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return rc, report, err


def test_candidates_keep_the_most_sensitive_layers_and_stop_at_the_first_that_passes(
    small_model: Path, capsys: pytest.CaptureFixture
) -> None:
    rc, report, err = convert_selective(small_model, capsys, "selective.tflite")
    assert rc == 0, err[-3000:]
    row = report["attempts"][-1]
    candidates = row["candidates"]
    assert [c["kept"] for c in candidates] == steps(99)[: len(candidates)]
    screened = [c for c in candidates if "proof_agreement" in c]

    def passes_screen(c: dict) -> bool:  # the proof's floors (0.98, 0.95) halfway closer to 100 %
        return c["screen_agreement"] >= 0.99 and c["screen_agreement_all_photos"] >= 0.975

    assert screened and all(passes_screen(c) for c in screened)
    assert not any(passes_screen(c) for c in candidates if c not in screened)
    assert screened[-1]["passed"] and not any(c["passed"] for c in screened[:-1])
    assert screened[-1]["latency_vs_int8"] <= 1.5
    kept = row["kept_in_float"]
    assert len(kept) == candidates[-1]["kept"]
    shares = [k["output_error_share"] for k in kept]
    assert shares == sorted(shares, reverse=True) and sum(shares) <= 1.001
    assert "layer sensitivity" in err
    assert list(small_model.parent.glob(".*.tmp")) == []  # no candidate left behind


def test_a_candidate_slower_than_the_limit_is_not_written(
    small_model: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit below any candidate's latency, the mode fails in one line naming it."""
    monkeypatch.setattr(attempts, "MAX_LATENCY_RATIO", 0.01)
    rc, _, err = convert_selective(small_model, capsys, "slow.tflite")
    assert rc != 0
    assert "full int8's latency (at most 0.01x)" in err, err[-2000:]
    assert not (small_model.parent / "slow.tflite").exists()
    assert list(small_model.parent.glob(".*.tmp")) == []

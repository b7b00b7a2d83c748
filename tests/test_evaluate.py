"""`ecolens evaluate` on the shipped labelled sample with the real model and the edge runtime."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys

from ecolens.train.evaluate import Prediction, reliability

from tests.support.daemon_helpers import REPO


def evaluate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "evaluate", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def test_table_json_and_pictures_agree_with_classify(tmp_path, eval_dir, reference_model):
    done = evaluate("--model", str(reference_model), "--data", str(eval_dir), "--out", str(tmp_path / "ev"))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    matrix = report["confusion_matrix"]
    assert sum(map(sum, matrix)) == report["n"] == len(report["predictions"]) >= 150
    assert report["accuracy"] == (matrix[0][0] + matrix[1][1]) / report["n"]
    assert report["balanced_accuracy"] > 0.75  # always answering the majority class scores 0.5
    assert sum(b["count"] for b in report["reliability"]["bins"]) == report["n"]
    assert 0 <= report["reliability"]["ece"] < 0.2
    assert f"accuracy {report['accuracy']:.1%}" in done.stdout
    assert [row["support"] for row in report["per_label"]] == [sum(row) for row in matrix]
    for name in ("confusion_matrix.png", "reliability.png"):
        width, height = png_size(tmp_path / "ev" / name)
        assert width >= 500 and height >= 500

    # The labels are those `ecolens classify` gives the same files.
    sample = report["predictions"][:5]
    classified = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "classify", "--model", str(reference_model),
         *(p["path"] for p in sample)],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert [json.loads(line)["label"] for line in classified] == [p["label"] for p in sample]


def test_unlabelled_folder_and_bad_image_get_one_line(tmp_path, eval_dir):
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(next(eval_dir.glob("plastic/*.jpg")), flat / "a.jpg")
    refused = evaluate("--data", str(flat), "--out", str(tmp_path / "out"))
    assert refused.returncode == 2 and "no labelled images" in refused.stderr
    assert "Traceback" not in refused.stderr

    labelled = tmp_path / "labelled" / "plastic"
    labelled.mkdir(parents=True)
    shutil.copy(next(eval_dir.glob("plastic/*.jpg")), labelled / "good.jpg")
    (labelled / "broken.jpg").write_bytes(b"not an image")
    partial = evaluate("--data", str(tmp_path / "labelled"), "--out", str(tmp_path / "out"))
    assert partial.returncode == 1 and "skipped" in partial.stderr and "broken.jpg" in partial.stderr
    assert json.loads((tmp_path / "out" / "evaluation.json").read_text())["n"] == 1


def test_reliability_bins_and_calibration_error():
    predictions = [
        Prediction("a", "plastic", "plastic", 0.95),
        Prediction("b", "plastic", "non_plastic", 0.95),
        Prediction("c", "plastic", "plastic", 0.55),
    ]
    result = reliability(predictions, low=0.5, bins=5)
    counts = [b["count"] for b in result["bins"]]
    assert counts == [1, 0, 0, 0, 2]
    assert result["bins"][4]["accuracy"] == 0.5 and result["bins"][4]["confidence"] == 0.95
    # |1 - 0.55| * 1/3 + |0.5 - 0.95| * 2/3
    assert abs(result["ece"] - (0.45 / 3 + 0.45 * 2 / 3)) < 1e-9
    # Wilson 95 % intervals, by hand: 1 of 1 correct is 0.207..1, 1 of 2 is 0.095..0.905
    one, two = result["bins"][0], result["bins"][4]
    assert (one["correct"], two["correct"]) == (1, 1)
    assert abs(one["ci_low"] - 0.2065) < 1e-3 and one["ci_high"] == 1.0
    assert abs(two["ci_low"] - 0.0945) < 1e-3 and abs(two["ci_high"] - 0.9055) < 1e-3
    assert "ci_low" not in result["bins"][1]


def test_wilson_interval_is_honest_about_three_images():
    from ecolens.train.evaluate import wilson

    low, high = wilson(3, 3)
    assert abs(low - 0.4385) < 1e-3 and high == 1.0  # not "100 %"
    low, high = wilson(165, 198)
    assert 0.77 < low < 0.833 < high < 0.88

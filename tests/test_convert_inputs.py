"""Fast checks of what the converter reads before any TensorFlow work: labels files, the error
example built from the output count, corrupt and weights-only files, input-range names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ecolens.convert.labels import read_labels_file, resolve
from ecolens.core.errors import EcoLensError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_teachable_machine_numbered_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_text("1 Plastic bottle\n0 Cardboard\n\n")
    assert read_labels_file(path) == (("Cardboard", "Plastic bottle"), True)


def test_plain_labels_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\ndog\n".encode())
    assert read_labels_file(path) == (("cat", "dog"), False)


def test_labels_beside_model_and_precedence(tmp_path: Path) -> None:
    source = tmp_path / "keras_model.h5"
    (tmp_path / "labels.txt").write_text("0 a\n1 b\n")
    assert resolve(source, 2, None, None, ("x", "y"))[:2] == (("a", "b"), "labels.txt beside the model")
    assert resolve(source, 2, ("p", "q"), None, ())[0] == ("p", "q")
    (tmp_path / "labels.txt").unlink()
    assert resolve(source, 2, None, None, ("x", "y"))[1] == ".h5 metadata"


def test_missing_labels_example_follows_output_count(tmp_path: Path) -> None:
    with pytest.raises(EcoLensError, match="--labels class0,class1,class2 "):
        resolve(tmp_path / "m.h5", 3, None, None, ())


def test_label_count_mismatch_names_the_source(tmp_path: Path) -> None:
    labels = tmp_path / "names.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(EcoLensError, match="from --labels-file .* outputs 4 classes"):
        resolve(tmp_path / "m.h5", 4, None, labels, ())


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecolens.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )


def assert_one_line(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr[-2000:]


def test_truncated_h5_is_one_line(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    bogus = tmp_path / "truncated.h5"
    bogus.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert_one_line(run("convert", str(bogus)), "damaged or truncated HDF5")


def test_weights_only_keras_archive_is_one_line(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "model.keras"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("model.weights.h5", b"")
    assert_one_line(run("convert", str(archive)), "holds only weights; re-save with model.save()")


def test_input_range_and_mean_are_exclusive(tmp_path: Path) -> None:
    source = tmp_path / "m.h5"
    source.write_bytes(b"x")
    assert_one_line(run("convert", str(source), "--input-range", "0..1", "--mean", "1"), "not both")

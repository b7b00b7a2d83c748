"""`ecolens classify` on emulated Raspberry Pis gives exactly the x86 labels and scores.

Each target is a Debian arm64 root (bookworm: Python 3.11, trixie: Python 3.13) with the
project's wheel and the real aarch64 wheels of the edge extra installed in a venv, run by
qemu as a Pi 4 (Cortex-A72) or a Pi 5 (Cortex-A76).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from ecolens.core.classifier import file_sha256
from ecolens.core.contract import validate_result
from ecolens.core.preprocess import find_images

from tests.arm64.results import chosen_images, parse_results
from tests.arm64.target import Target, describe

pytestmark = pytest.mark.arm64

# What must be identical; inference_ms and timestamp legitimately differ between runs.
COMPARED = ("label", "confidence", "scores", "uncertain", "model", "contract_version")


def test_runtime_is_aarch64_with_the_hosts_package_versions(arm64_target: Target) -> None:
    info = describe(arm64_target)
    assert info["machine"] == "aarch64"
    assert info["python"].startswith(f"{arm64_target.emulator.rootfs.python_version}.")
    assert info["litert_file"].startswith(str(arm64_target.venv))
    for name, version in arm64_target.wheelhouse.pins.items():
        assert info["versions"][name] == version, name


def test_classify_matches_x86_exactly(
    arm64_target: Target, reference_model: Path, eval_dir: Path, x86_results: dict[str, dict]
) -> None:
    images = chosen_images(eval_dir, x86_results)
    assert len(images) >= min(20, len(x86_results))
    args = ("classify", "--model", str(reference_model), *map(str, images))
    arm64_results = parse_results(arm64_target.ecolens(*args).stdout)
    assert list(arm64_results) == [str(image) for image in images]
    mismatches = []
    for source, arm64 in arm64_results.items():
        validate_result(arm64)
        x86 = x86_results[source]
        different = {key: (x86[key], arm64[key]) for key in COMPARED if x86[key] != arm64[key]}
        if different:
            mismatches.append(f"{Path(source).name}: {different}")
    assert not mismatches, f"{len(mismatches)} of {len(images)} differ:\n" + "\n".join(mismatches)


def test_default_model_is_the_reference_model_shipped_in_the_wheel(
    arm64_target: Target, reference_model: Path, eval_dir: Path, x86_results: dict[str, dict]
) -> None:
    image = str(next(iter(find_images(eval_dir))))
    done = arm64_target.ecolens("classify", image)
    (result,) = parse_results(done.stdout).values()
    assert result["model"]["sha256"] == file_sha256(reference_model)
    assert {key: result[key] for key in COMPARED} == {key: x86_results[image][key] for key in COMPARED}


def test_broken_image_gets_one_error_line_and_the_rest_are_classified(
    arm64_target: Target, eval_dir: Path, tmp_path: Path
) -> None:
    good = tmp_path / "good.jpg"
    shutil.copy(next(iter(find_images(eval_dir))), good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    done = arm64_target.ecolens("classify", str(tmp_path), check=False)
    assert done.returncode == 1
    assert list(parse_results(done.stdout)) == [str(good)]
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [error["source"] for error in errors] == [str(broken)]
    assert "not a decodable image" in errors[0]["error"]
    assert "Traceback" not in done.stderr

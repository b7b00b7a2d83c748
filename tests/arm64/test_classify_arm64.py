"""`ecolens classify` on emulated Raspberry Pis answers like x86, within the spread that
separates two CPUs' int8 kernels (tests/support/parity.py), and boards of one family answer
exactly alike.

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
from tests.support.parity import Tolerance, differences, exact_differences, output_step

pytestmark = pytest.mark.arm64

# What boards of one family give identically; inference_ms and timestamp differ between runs.
COMPARED = ("label", "confidence", "scores", "uncertain", "model", "contract_version")
# Every board's classify results, keyed by target name: the first board is the others' reference.
BOARD_RESULTS: dict[str, dict[str, dict]] = {}


def test_runtime_is_aarch64_with_the_hosts_package_versions(arm64_target: Target) -> None:
    info = describe(arm64_target)
    assert info["machine"] == "aarch64"
    assert info["python"].startswith(f"{arm64_target.emulator.rootfs.python_version}.")
    assert info["litert_file"].startswith(str(arm64_target.venv))
    for name, version in arm64_target.wheelhouse.pins.items():
        assert info["versions"][name] == version, name


def test_classify_matches_x86_within_the_cross_cpu_tolerance(
    arm64_target: Target, reference_model: Path, eval_dir: Path, x86_results: dict[str, dict]
) -> None:
    images = chosen_images(eval_dir, x86_results)
    assert len(images) >= min(20, len(x86_results))
    args = ("classify", "--model", str(reference_model), *map(str, images))
    arm64_results = parse_results(arm64_target.ecolens(*args).stdout)
    assert list(arm64_results) == [str(image) for image in images]
    for arm64 in arm64_results.values():
        validate_result(arm64)
    x86 = {str(image): x86_results[str(image)] for image in images}
    problems = differences(x86, arm64_results, Tolerance(output_step(reference_model)))
    assert not problems, f"{len(problems)} differences beyond the cross-CPU spread:\n" + "\n".join(problems)
    # Pi 4 and Pi 5 run different XNNPACK NEON kernels (with and without the dot product), and
    # Python 3.11 and 3.13 different wheels, yet every board measured gave identical results:
    # the arm64 int8 paths round alike. So boards are compared with each other exactly.
    for other_name, other in BOARD_RESULTS.items():
        same = exact_differences(other, arm64_results, COMPARED)
        assert not same, f"{arm64_target.name} differs from {other_name}:\n" + "\n".join(same)
    BOARD_RESULTS[arm64_target.name] = arm64_results


def test_default_model_is_the_reference_model_shipped_in_the_wheel(
    arm64_target: Target, reference_model: Path, eval_dir: Path, x86_results: dict[str, dict]
) -> None:
    image = str(next(iter(find_images(eval_dir))))
    done = arm64_target.ecolens("classify", image)
    (result,) = parse_results(done.stdout).values()
    assert result["model"]["sha256"] == file_sha256(reference_model)
    assert not differences(
        {image: x86_results[image]}, {image: result}, Tolerance(output_step(reference_model))
    )


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

"""The cross-CPU tolerance (tests/support/parity.py) is measured, not wished: on this CPU, LiteRT's
other kernel families (which round as another CPU's XNNPACK paths do) stay inside it, one
kernel family is exactly deterministic, and the comparison does catch a model that really
answers differently."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from ecolens.bench.kernels import classify_with
from ecolens.core.preprocess import find_images

from tests.support.parity import MAX_STEPS, Tolerance, differences, exact_differences, output_step


@pytest.fixture(scope="module")
def images(eval_dir: Path) -> list[Path]:
    return find_images(eval_dir)[::5]


@pytest.fixture(scope="module")
def xnnpack(reference_model: Path, images: list[Path]) -> dict[str, dict]:
    return classify_with(reference_model, images, "auto")


@pytest.fixture(scope="module")
def tolerance(reference_model: Path) -> Tolerance:
    return Tolerance(output_step(reference_model))


@pytest.mark.parametrize("kernels", ["builtin", "reference"])
def test_other_kernel_families_on_this_cpu_stay_within_the_cross_cpu_tolerance(
    kernels: str, reference_model: Path, images: list[Path], xnnpack: dict, tolerance: Tolerance
) -> None:
    other = classify_with(reference_model, images, kernels)
    assert not differences(xnnpack, other, tolerance)


def test_one_kernel_family_on_one_cpu_is_exact(reference_model: Path, images: list[Path], xnnpack: dict):
    again = classify_with(reference_model, images, "auto")
    assert not exact_differences(xnnpack, again, ("label", "confidence", "scores", "uncertain", "model"))


def test_the_tolerance_refuses_what_is_not_rounding(xnnpack: dict, tolerance: Tolerance) -> None:
    """A score moved by more than the measured spread, and a confident label flipped, are both
    reported: the tolerance can fail."""
    moved = copy.deepcopy(xnnpack)
    source = next(iter(moved))
    label = next(iter(moved[source]["scores"]))
    moved[source]["scores"][label] += (MAX_STEPS + 2) * tolerance.step
    assert any("a score moved" in line for line in differences(xnnpack, moved, tolerance))

    confident = max(xnnpack, key=lambda s: xnnpack[s]["confidence"])
    flipped = copy.deepcopy(xnnpack)
    other_label = next(lb for lb in flipped[confident]["scores"] if lb != flipped[confident]["label"])
    flipped[confident]["label"] = other_label
    assert any("label" in line for line in differences(xnnpack, flipped, tolerance))

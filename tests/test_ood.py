"""The out-of-domain generator, the board mask, letterbox resizing and the calibration maths,
on the shipped TrashNet sample photos (no model needed: fast)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import LETTERBOX_PAD, load_image, resize_for_model
from ecolens.models import eval_dir
from ecolens.train.board import item_alpha
from ecolens.train.calibration import (
    confident_error_share,
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from ecolens.train.ood import FRAME, VARIANTS, ood_variants


def photo(index: int = 0, label: str = "plastic") -> tuple[np.ndarray, str]:
    path = sorted((eval_dir() / label).glob("*.jpg"))[index]
    return load_image(path), f"{label}/{path.name}"


def red_disc_on_board() -> np.ndarray:
    """A TrashNet-like studio photo with a known item: a red disc on an off-white board."""
    board = np.full((84, 112, 3), (225, 222, 218), np.uint8)
    cv2.circle(board, (56, 42), 20, (200, 30, 30), -1)
    return board


def red_share(rgb: np.ndarray) -> float:
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return float(((r > 120) & (g < 90) & (b < 90)).mean())


def saturation(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].astype(float)


def test_generator_is_deterministic_and_seeded_by_the_photo() -> None:
    rgb, key = photo()
    first, again = ood_variants(rgb, key), ood_variants(rgb.copy(), key)
    assert list(first) == list(VARIANTS)
    for name in VARIANTS:
        assert np.array_equal(first[name], again[name]), name
        assert first[name].dtype == np.uint8 and first[name].shape[2] == 3
    other = ood_variants(rgb, key + "x")
    assert not np.array_equal(first["clutter"], other["clutter"])


def test_board_mask_finds_the_item() -> None:
    alpha = item_alpha(red_disc_on_board())
    assert alpha[42, 56] > 0.99 and alpha[5, 5] < 0.01
    assert 0.08 < alpha.mean() < 0.2  # the disc is 13 % of the photo


def test_dark_chamber_is_dark_wide_with_a_lit_strip() -> None:
    rgb, key = photo()
    out = ood_variants(rgb, key)["dark_chamber"]
    assert out.shape[:2] == FRAME
    rows = out.mean(axis=(1, 2))
    assert out.mean() < 0.6 * rgb.mean()
    assert np.percentile(rows, 10) < 40 and rows.max() > 3 * np.percentile(rows, 10)


def test_small_in_frame_shrinks_the_item_in_a_wide_frame() -> None:
    disc = red_disc_on_board()
    out = ood_variants(disc, "synthetic/disc.jpg")["small_in_frame"]
    assert out.shape[:2] == FRAME
    assert 0.0 < red_share(out) < 0.25 * red_share(disc)


def test_coloured_background_replaces_the_board() -> None:
    disc = red_disc_on_board()
    out = ood_variants(disc, "synthetic/disc.jpg")["coloured_background"]
    assert saturation(disc)[:5].mean() < 20 and saturation(out)[:5].mean() > 100
    assert red_share(out[32:52, 46:66]) > 0.9  # the item stays


def test_clutter_adds_structure_around_the_item() -> None:
    rgb, key = photo()
    out = ood_variants(rgb, key)["clutter"]
    edges = lambda x: cv2.Canny(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), 50, 150)[:10].mean()  # noqa: E731
    assert edges(out) > edges(rgb) + 5


def test_colour_cast_blur_and_jpeg_noise() -> None:
    rgb, key = photo()
    out = ood_variants(rgb, key)
    means, cast = rgb.reshape(-1, 3).mean(0), out["colour_cast"].reshape(-1, 3).mean(0)
    ratio = (cast / cast.mean()) / (means / means.mean())
    assert np.abs(ratio - 1).max() > 0.1 and cast.mean() < means.mean()
    sharpness = lambda x: cv2.Laplacian(cv2.cvtColor(x, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()  # noqa: E731
    assert sharpness(out["motion_blur"]) < 0.6 * sharpness(rgb)
    noisy = out["jpeg_noise"].astype(float) - rgb
    assert np.abs(noisy).mean() > 4


def test_letterbox_keeps_aspect_and_pads() -> None:
    frame = np.full((720, 1280, 3), 200, np.uint8)
    out = resize_for_model(frame, InputSpec(height=224, width=224, resize="letterbox"))
    assert out.shape == (224, 224, 3)
    assert (out[:40] == LETTERBOX_PAD).all() and (out[-40:] == LETTERBOX_PAD).all()
    assert (out[60:160] == 200).all()  # 1280x720 -> 224x126, centred
    tall = resize_for_model(
        np.zeros((100, 50, 3), np.uint8), InputSpec(height=64, width=64, resize="letterbox")
    )
    assert (tall[:, :14] == LETTERBOX_PAD).all() and (tall[:, 20:44] == 0).all()


def test_temperature_ece_and_confident_errors() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 4000)
    # Logits five times too sharp: right 80 % of the time, with ~100 % confidence.
    margin = np.where(rng.random(4000) < 0.8, 1.4, -1.4) * np.where(labels == 1, 1, -1)
    logits = np.stack([-margin, margin], axis=1) * 5 / 2
    t = fit_temperature(logits, labels)
    assert 3.5 < t < 7
    raw, calibrated = softmax(logits), softmax(logits, t)
    assert expected_calibration_error(calibrated, labels) < 0.05 < expected_calibration_error(raw, labels)
    assert confident_error_share(raw, labels) == pytest.approx(1.0)
    assert confident_error_share(calibrated, labels) < 0.1

"""A model swapped while the daemon is on an item (hot reload, rollout) must never stamp its
name on answers the previous model gave: a canary's verdict reads results by model sha256."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from ecolens.core.classifier import Classifier
from ecolens.core.preprocess import find_images, load_image
from ecolens.edge.daemon.config.detect import DetectSection
from ecolens.edge.daemon.config.source import SourceSection
from ecolens.edge.daemon.pipeline import ItemPipeline
from ecolens.edge.daemon.sources import make_source
from ecolens.edge.daemon.sources.base import Frame

from tests.support.daemon_helpers import clip_path
from tests.support.model_variants import variant


class SwapAfter:
    """The daemon's `current model` accessor, switching to ``after`` from its ``calls``-th call
    on: what a rollout does to the running daemon between two of the pipeline's steps."""

    def __init__(self, before: Classifier, after: Classifier, calls: int) -> None:
        self.before, self.after, self.calls, self.count = before, after, calls, 0

    def __call__(self) -> Classifier:
        self.count += 1
        return self.after if self.count >= self.calls else self.before


def two_models(reference_model: Path, tmp_path: Path) -> tuple[Classifier, Classifier]:
    one_class = variant(reference_model, tmp_path / "one-class.tflite", "9.0.0", one_class=True)
    return Classifier(reference_model), Classifier(one_class)


def test_a_still_classified_by_one_model_is_stamped_with_it(reference_model, eval_dir, tmp_path):
    before, after = two_models(reference_model, tmp_path)
    path = next(p for p in find_images(eval_dir) if before.classify(load_image(p))["label"] != "plastic")
    rgb = load_image(path)
    expected = before.classify(rgb)
    assert after.classify(rgb)["model"]["sha256"] != expected["model"]["sha256"]
    # The swap lands between the still's classification and its result.
    pipeline = ItemPipeline(SwapAfter(before, after, 2), DetectSection(), "bin", "folder")
    frame = Frame(pixels=rgb, order="RGB", t=0.0, path=str(path))
    (item,) = pipeline.process(frame)
    assert item.result["model"]["sha256"] == before.sha256
    assert item.result["label"] == expected["label"]
    assert item.result["confidence"] == expected["confidence"]


def test_an_item_spanning_a_swap_is_answered_by_the_new_model_alone(reference_model, tmp_path):
    before, after = two_models(reference_model, tmp_path)
    black = np.zeros((64, 64, 3), dtype=np.uint8)
    constant = after.classify(black)["label"]  # the one-class model's only answer
    source = make_source(SourceSection(uri=str(clip_path()), speed=0), threading.Event())
    source.open()
    # Swap on the 3rd model lookup: the first item's 3rd frame (items take several frames).
    swap = SwapAfter(before, after, 3)
    pipeline = ItemPipeline(swap, DetectSection(combine="mean"), "bin", "clip")
    results = []
    while (frame := source.read()) is not None:
        results.extend(item.result for item in pipeline.process(frame))
    assert results and swap.count > 3
    for result in results:
        assert result["model"]["sha256"] == after.sha256
        assert result["label"] == constant
        assert result["confidence"] == after.classify(black)["confidence"]

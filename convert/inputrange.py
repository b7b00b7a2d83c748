"""How a model expects its pixels: from the user's flags, a preprocessing layer in the graph, a
recognised architecture, or a check on real photos; each finding names its source, and when
they disagree or nothing decides the converter refuses with one line naming the flag to pass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from ecolens.convert.graph import names, walk
from ecolens.convert.metrics import answer_stats, balanced_accuracy
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import to_model_input

# The '=' form, because argparse reads "--input-range -1..1" as two options.
FLAG_HINT = "pass --input-range=0..255|0..1|-1..1|caffe|torch (or --mean/--std)"
# A range under which the model gives one answer for this share of varied photos is suspect.
DEGENERATE_SHARE = 0.9


@dataclass(frozen=True)
class InputRange:
    """(x - mean) / std on 0..255 pixels in ``color_order``: what keras preprocess_input modes do."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str = "RGB"


RANGES = {
    "0..255": InputRange("0..255", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
    "0..1": InputRange("0..1", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),
    "-1..1": InputRange("-1..1", (127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),
    # keras.applications 'caffe' mode: BGR, ImageNet means subtracted (BGR order), no scaling.
    "caffe": InputRange("caffe", (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), "BGR"),
    # 'torch' mode: 0..1 then ImageNet mean/std, i.e. on 0..255 pixels:
    "torch": InputRange("torch", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}
# Ranges the data check chooses among: caffe and torch come only from an architecture or a flag.
PLAIN_RANGES = ("0..255", "0..1", "-1..1")
# Saturated: a median confidence this high while another range gives calmer varied answers.
SATURATED_CONFIDENCE = 0.99
CALM_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Finding:
    range: InputRange
    source: str


def spec_with(spec: InputSpec, rng: InputRange) -> InputSpec:
    return replace(spec, mean=rng.mean, std=rng.std, color_order=rng.color_order)


def name_of(mean: Sequence[float], std: Sequence[float], color_order: str) -> str:
    """The preset these numbers are, or 'custom'."""
    for rng in RANGES.values():
        if (
            np.allclose(rng.mean, mean, atol=0.01)
            and np.allclose(rng.std, std, atol=0.01)
            and rng.color_order == color_order
        ):
            return rng.name
    return "custom"


# ---- the graph -------------------------------------------------------------------------------

ARITHMETIC = {"TrueDivide", "Divide", "Subtract", "Multiply", "Add", "TFOpLambda", "Lambda"}


def from_rescaling(layer: Any) -> str:
    """Rescaling(1/255) or (1/127.5, -1) takes 0..255; Rescaling(2, -1) takes 0..1."""
    scale = float(np.mean(np.abs(np.asarray(layer.scale, dtype=np.float64))))
    return "0..1" if scale > 1.0 else "0..255"


def from_normalization(layer: Any) -> str:
    """An adapted Normalization whose means are pixel-sized takes 0..255, else 0..1."""
    mean = getattr(layer, "mean", None)
    if mean is None:
        return "0..255"
    return "0..255" if float(np.max(np.abs(np.asarray(mean)))) > 2.0 else "0..1"


def from_graph(model: Any) -> Finding | None:
    """A preprocessing step before the first weighted layer, at any depth of nesting."""
    for layer in walk(model):
        kind = layer.__class__.__name__
        if kind == "Rescaling":
            rng = from_rescaling(layer)
            return Finding(RANGES[rng], f"graph: Rescaling layer {layer.name!r} (scale {layer.scale})")
        if kind == "Normalization":
            rng = from_normalization(layer)
            return Finding(RANGES[rng], f"graph: Normalization layer {layer.name!r}")
        if kind in ARITHMETIC:
            return Finding(RANGES["0..255"], f"graph: arithmetic on the input ({kind} {layer.name!r})")
        if getattr(layer, "weights", None):
            return None
    return None


# ---- the architecture ------------------------------------------------------------------------

# (name, layer names that must all be present, range): keras.applications naming, which transfer
# models and Teachable Machine exports keep. Order matters: Xception before VGG, ResNetV2 first.
ARCHITECTURES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("MobileNetV2", ("Conv1", "expanded_conv_project"), "-1..1"),
    ("MobileNetV3", ("expanded_conv_depthwise", "expanded_conv_project"), "-1..1"),
    ("MobileNet", ("conv_dw_1", "conv_pw_1"), "-1..1"),
    ("InceptionResNetV2", ("block35_1",), "-1..1"),
    ("InceptionV3", ("mixed0", "mixed1"), "-1..1"),
    ("Xception", ("block1_conv1_bn", "block2_sepconv1"), "-1..1"),
    ("ResNetV2", ("conv1_conv", "post_bn"), "-1..1"),
    ("DenseNet", ("conv1/conv", "pool2_conv"), "torch"),
    ("EfficientNet", ("stem_conv", "block1a_dwconv"), "0..255"),
    ("ResNet", ("conv1_conv", "conv2_block1_1_conv"), "caffe"),
    ("VGG", ("block1_conv1", "block1_pool", "block2_conv1"), "caffe"),
)


def from_architecture(model: Any, teachable_machine: bool = False) -> Finding | None:
    present = names(model)
    for arch, required, rng in ARCHITECTURES:
        if all(name in present for name in required):
            what = f"{arch} (Teachable Machine export)" if teachable_machine else arch
            return Finding(RANGES[rng], f"architecture: {what} layers, keras.applications preprocessing")
    if teachable_machine:
        return Finding(RANGES["-1..1"], "architecture: Teachable Machine export")
    return None


# ---- the data check --------------------------------------------------------------------------

Predict = Callable[[np.ndarray], np.ndarray]  # batch of input tensors -> probabilities


def data_check(
    predict: Predict, rgbs: Sequence[np.ndarray], spec: InputSpec, candidates: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """How the source model answers the photos under each candidate range."""
    stats = {}
    for name in candidates:
        candidate = spec_with(spec, RANGES[name])
        probs = predict(np.stack([to_model_input(rgb, candidate) for rgb in rgbs]))
        stats[name] = {**answer_stats(probs), "probabilities": probs}
    return stats


def degenerate(stats: dict[str, Any]) -> bool:
    return stats["top_share"] >= DEGENERATE_SHARE


def plausible(stats: dict[str, dict[str, Any]]) -> list[str]:
    """Ranges under which the answers look like a working model: not one class for nearly every
    photo, and not saturated at ~1.0 confidence where another range gives calmer varied answers
    (pixels 255 times too large push every logit to an extreme)."""
    varied = [name for name, value in stats.items() if not degenerate(value)]
    calm = [name for name in varied if stats[name]["median_confidence"] <= CALM_CONFIDENCE]
    if not calm:
        return varied
    return [name for name in varied if stats[name]["median_confidence"] < SATURATED_CONFIDENCE]


def describe_answers(name: str, stats: dict[str, Any], labels: Sequence[str]) -> str:
    label = labels[stats["top_index"]]
    return (
        f"under {name} it answers {label!r} for {stats['top_share']:.0%} of {stats['n']} photos "
        f"(median confidence {stats['median_confidence']:.2f})"
    )


def infer(
    model: Any,
    predict: Predict,
    rgbs: Sequence[np.ndarray],
    spec: InputSpec,
    labels: Sequence[str],
    truth: Sequence[int | None] = (),
    teachable_machine: bool = False,
) -> tuple[Finding, dict[str, dict[str, Any]]]:
    """The input range from the graph, else the architecture, checked against the data; the data
    alone when neither knows. ``truth`` (label index per photo, or None) breaks ties."""
    claim = from_graph(model) or from_architecture(model, teachable_machine)
    candidates = list(PLAIN_RANGES)
    if claim is not None and claim.range.name not in candidates and spec.channels == 3:
        candidates.append(claim.range.name)
    stats = data_check(predict, rgbs, spec, candidates)
    if claim is not None:
        # Only a collapse contradicts what the model says of itself (a well-trained model may be
        # confident under its true range), and only against varied answers that are clearly
        # above chance (an untrained model is near 1/K under every range).
        chosen = claim.range.name
        sure = 1.0 / max(2, len(labels)) + 0.15
        varied = [
            name
            for name in candidates
            if not degenerate(stats[name]) and stats[name]["median_confidence"] >= sure
        ]
        if chosen in varied or not varied or chosen not in stats:
            return claim, stats
        raise EcoLensError(
            f"the input range is unclear: {claim.source} says {chosen}, but "
            f"{describe_answers(chosen, stats[chosen], labels)} while under {', '.join(varied)} "
            f"answers vary; pass --input-range={varied[0]} (or the range it was trained on)"
        )
    varied = plausible(stats)
    if len(varied) == 1:
        name = varied[0]
        return Finding(
            RANGES[name],
            f"data check: of {', '.join(candidates)} only {name} gives varied, unsaturated answers "
            f"on {len(rgbs)} photos",
        ), stats
    best = tie_break(varied, stats, truth, len(labels))
    if best is not None:
        return best, stats
    if not varied:
        raise EcoLensError(
            f"cannot tell the input range: the model answers one class for nearly every photo "
            f"under every range tried ({', '.join(candidates)}); {FLAG_HINT}"
        )
    raise EcoLensError(
        f"cannot tell the input range: nothing in the model names it and {', '.join(varied)} "
        f"all give varied answers; {FLAG_HINT}"
    )


def tie_break(
    varied: Sequence[str], stats: dict[str, dict[str, Any]], truth: Sequence[int | None], classes: int
) -> Finding | None:
    """With labelled photos: the one range clearly more accurate than the others (by 0.1 of
    balanced accuracy) and clearly better than always answering the majority class."""
    known = [i for i, t in enumerate(truth) if t is not None]
    if len(varied) < 2 or len(known) < 10:
        return None
    scores = {}
    for name in varied:
        predicted = stats[name]["probabilities"].argmax(axis=1)
        scores[name] = balanced_accuracy([truth[i] for i in known], [int(predicted[i]) for i in known])
    ranked = sorted(scores, key=scores.get, reverse=True)
    best, second = ranked[0], ranked[1]
    if scores[best] >= scores[second] + 0.1 and scores[best] >= 1.0 / classes + 0.1:
        return Finding(
            RANGES[best],
            f"data check: {best} is the most accurate on {len(known)} labelled photos "
            f"(balanced accuracy {scores[best]:.2f}; next {second} {scores[second]:.2f})",
        )
    return None


def cross_check(
    chosen: str,
    source: str,
    predict: Predict,
    rgbs: Sequence[np.ndarray],
    spec: InputSpec,
    truth: Sequence[int | None] = (),
) -> str | None:
    """Why a range the user gave looks wrong, or None: under it the model collapses or saturates
    while a plain range gives varied, calmer answers that are at least as accurate on labelled
    photos (by 0.1 of balanced accuracy). Top-1 can survive a 255-times-too-large input; the
    probabilities do not."""
    candidates = list(dict.fromkeys([chosen, *PLAIN_RANGES])) if spec.channels == 3 else list(PLAIN_RANGES)
    if chosen not in candidates:
        return None
    stats = data_check(predict, rgbs, spec, candidates)
    fine = plausible(stats)
    if chosen in fine:
        return None
    known = [i for i, t in enumerate(truth) if t is not None]

    def accuracy(name: str) -> float:
        if len(known) < 10:
            return 0.0
        predicted = stats[name]["probabilities"].argmax(axis=1)
        return balanced_accuracy([truth[i] for i in known], [int(predicted[i]) for i in known])

    # with labelled photos, only a clearly more accurate range is evidence against the stated one
    lead = 0.1 if len(known) >= 10 else 0.0
    better = [name for name in fine if name != chosen and accuracy(name) >= accuracy(chosen) + lead]
    if not better:
        return None
    mine, theirs = stats[chosen], stats[better[0]]
    score = f" (balanced accuracy {accuracy(better[0]):.2f} vs {accuracy(chosen):.2f})" if known else ""
    return (
        f"the input range looks wrong: under {chosen} ({source}) the model answers with median "
        f"confidence {mine['median_confidence']:.2f}, {mine['top_share']:.0%} one class, while under "
        f"{better[0]} its answers are varied and calmer (median confidence "
        f"{theirs['median_confidence']:.2f}){score}"
    )


def evidence_against(
    chosen: str,
    predict: Predict,
    rgbs: Sequence[np.ndarray],
    spec: InputSpec,
    labels: Sequence[str],
    truth: Sequence[int | None] = (),
) -> str | None:
    """Evidence that ``spec`` (named ``chosen``) is the wrong input range, or None: with labelled
    photos another plain range is clearly more accurate; without, the model collapses under
    ``spec`` while under another range its answers vary with some confidence. A model that
    collapses under every range collapses by itself: no evidence against the range."""
    others = [name for name in PLAIN_RANGES if name != chosen]
    stats = data_check(predict, rgbs, spec, others)
    probs = predict(np.stack([to_model_input(rgb, spec) for rgb in rgbs]))
    mine = {**answer_stats(probs), "probabilities": probs}
    known = [i for i, t in enumerate(truth) if t is not None]
    if len(known) >= 10:

        def score(value: dict[str, Any]) -> float:
            predicted = value["probabilities"].argmax(axis=1)
            return balanced_accuracy([truth[i] for i in known], [int(predicted[i]) for i in known])

        floor = 1.0 / max(2, len(labels)) + 0.1
        better = [n for n in others if score(stats[n]) >= max(score(mine) + 0.1, floor)]
        if not better:
            return None
        return (
            f"under {better[0]} the source model is clearly more accurate on {len(known)} labelled "
            f"photos (balanced accuracy {score(stats[better[0]]):.2f} vs {score(mine):.2f} under {chosen})"
        )
    if not degenerate(mine):
        return None
    sure = 1.0 / max(2, len(labels)) + 0.15
    varied = [n for n in others if not degenerate(stats[n]) and stats[n]["median_confidence"] >= sure]
    if not varied:
        return None
    theirs = describe_answers(varied[0], stats[varied[0]], labels)
    return f"{describe_answers(chosen, mine, labels)}, while {theirs}"

"""`ecolens adapt`: fit a trained model to one site's camera with a few hundred labelled frames.

A few hundred frames cannot retrain a convolutional trunk, but they can move what sits on top of
it. So the trunk stays frozen and three things are fitted on its features:

1. the final Dense layer (multinomial logistic regression, pulled towards the base weights and
   trained on the field frames mixed with base training images, so it does not forget),
2. a decision threshold for the positive class (chosen on out-of-fold predictions to maximise
   balanced accuracy); with ``gated_threshold`` applied through a domain gate (about 1 on the
   site's frames, about 0 on base images) so that it moves the decision on this camera but not
   on the base domain, and
3. a temperature (chosen on the same out-of-fold predictions to minimise log loss).

Threshold and temperature are folded into the Dense weights (logits / T, plus a shift of the
positive logit), so the adapted model has the base model's exact architecture and every later
step (`ecolens convert`, the edge's argmax, `min_confidence`) works unchanged.

Part of the field frames (a stable hash of each file's path) is held out and never fitted on;
base and adapted models are compared on it, and the adapted model is written only when it is
better there and not worse on held-out base images.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ecolens.convert.calibration import expected_calibration_error
from ecolens.convert.dataset import LABELS, NEGATIVE_LABEL, POSITIVE_LABEL, Sample, scan
from ecolens.convert.h5meta import read_h5_metadata, write_h5_metadata
from ecolens.convert.loading import load_keras_model
from ecolens.convert.metrics import classification_metrics
from ecolens.core.errors import EcoLensError, ModelError
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import load_image, to_model_input

FOLDS = 5
MIN_PER_CLASS = 8  # labelled frames of each class needed on each side of the hold-out split
REGULARISATION_GRID = (0.01, 0.03, 0.1, 0.3)


class NotBetter(EcoLensError):
    """The adapted model does not beat the base model on the held-out frames: nothing written."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class AdaptOptions:
    base: Path
    data: Path
    out: Path
    base_data: Path | None = None  # base-domain training images to mix in (default: shipped sample)
    base_eval: Path | None = None  # base-domain held-out images (default: shipped eval sample)
    positive_folders: tuple[str, ...] = ("plastic",)
    holdout_percent: int = 33
    base_share: float = 1.0  # weight of the base images relative to the field frames
    min_gain: float = 0.02  # balanced accuracy the adapted model must gain on held-out frames
    max_base_drop: float = 0.03  # balanced accuracy it may lose on held-out base images
    version: str | None = None
    seed: int = 1234
    # once the held-out comparison passed, fit the written model on every labelled frame (held-out
    # ones too) with the regularisation, threshold and temperature chosen without them
    refit_all: bool = False
    # apply the threshold shift through the domain gate (see DomainGate) instead of everywhere
    gated_threshold: bool = False


def log(message: str) -> None:
    print(f"[adapt] {message}", file=sys.stderr, flush=True)


# --- the model: a frozen trunk and its final Dense layer -------------------------------------


def producer(tensor: Any) -> Any:
    """The layer that made this symbolic tensor."""
    return tensor._keras_history[0]


def is_linear_dense(layer: Any) -> bool:
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    return type(layer).__name__ == "Dense" and activation == "linear"


class GroupedHead:
    """Dense layers whose outputs are added (then scaled by a temperature) seen as ONE Dense
    over their concatenated inputs, so adapt fits them together: W = vstack(W_g) * s,
    b = sum(b_g) * s. Writing splits w / s by rows back into each Dense and puts the bias into
    the Dense that has one, so the model keeps its architecture (and int8 keeps one
    quantization range per feature group)."""

    def __init__(self, denses: list[Any], scale: float) -> None:
        self.denses = denses
        self.scale = scale
        self.with_bias = [d for d in denses if d.use_bias]

    def get_weights(self) -> list[np.ndarray]:
        kernels = [np.asarray(d.kernel.numpy(), dtype=np.float64) for d in self.denses]
        bias = sum(np.asarray(d.bias.numpy(), dtype=np.float64) for d in self.with_bias)
        return [np.vstack(kernels) * self.scale, np.asarray(bias) * self.scale]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        w, b = (np.asarray(v, dtype=np.float64) / self.scale for v in weights)
        rows = np.cumsum([int(d.kernel.shape[0]) for d in self.denses])[:-1]
        for dense, kernel in zip(self.denses, np.split(w, rows)):
            dense.kernel.assign(kernel.astype(np.float32))
        for i, dense in enumerate(self.with_bias):
            dense.bias.assign((b if i == 0 else np.zeros_like(b)).astype(np.float32))


class ConcatenatedFeatures:
    """The image -> the concatenated inputs of a head's Dense layers (what GroupedHead fits on)."""

    def __init__(self, *stages: Any) -> None:
        self.stages = stages

    def predict(self, batch: np.ndarray, verbose: int = 0) -> np.ndarray:
        values: Any = batch
        for stage in self.stages:
            values = stage.predict(values, verbose=verbose)
        values = values if isinstance(values, list) else [values]
        return np.concatenate([np.asarray(v).reshape(len(batch), -1) for v in values], axis=1)


def grouped_head(model: Any) -> tuple[Any, GroupedHead] | None:
    """(features, head) when the softmax reads an optional Rescaling (the temperature) of one
    Dense or an Add of Dense layers, in the model itself or inside a nested head Model; else None."""
    import keras

    logits = producer(model.layers[-1].input)
    scale = 1.0
    if type(logits).__name__ == "Rescaling":
        if float(np.max(np.abs(logits.offset))) != 0.0 or np.size(logits.scale) != 1:
            return None
        scale = float(np.asarray(logits.scale).reshape(()))
        logits = producer(logits.input)
    nested = None
    if isinstance(logits, keras.Model):
        if len(logits._inbound_nodes) != 1 or len(logits.outputs) != 1:
            return None
        nested, logits = logits, producer(logits.outputs[0])
    denses = [producer(t) for t in logits.input] if type(logits).__name__ == "Add" else [logits]
    if not denses or not all(is_linear_dense(d) for d in denses) or not any(d.use_bias for d in denses):
        return None
    head = GroupedHead(denses, scale)
    inner_outputs = [d.input for d in denses]
    if nested is None:
        return ConcatenatedFeatures(keras.Model(model.inputs, inner_outputs)), head
    outer = keras.Model(model.inputs, list(nested._inbound_nodes[0].input_tensors))
    return ConcatenatedFeatures(outer, keras.Model(nested.inputs, inner_outputs)), head


def split_head(model: Any) -> tuple[Any, Any, Any]:
    """(feature extractor, the Dense layer to fit, a function building the adapted model).

    A model ending in Dense(softmax), Dense(logits) or Dense + Softmax/Activation gets that
    Dense layer refitted on the features it reads. A softmax over an optional temperature
    (Rescaling) of Dense layers added together (the reference model 2.0.0: a nested head with
    one Dense per feature group) gets those Dense layers refitted as one. Any other model whose
    output is a softmax gets a new Dense layer on its class logits, started at the identity:
    an affine recalibration of the logits (threshold and temperature included).
    """
    import keras

    layers = model.layers
    last = layers[-1]
    softmax_after = type(last).__name__ in ("Softmax", "Activation") and len(layers) > 1
    head = layers[-2] if softmax_after else last
    activation = getattr(getattr(head, "activation", None), "__name__", "linear")
    if type(head).__name__ == "Dense" and activation in ("softmax", "linear"):
        return keras.Model(model.inputs, head.input), head, lambda: model
    if not softmax_after:
        raise ModelError(
            f"adapt needs a model whose output is a softmax or its last layer Dense; "
            f"this one ends in {type(last).__name__}"
        )
    grouped = grouped_head(model)
    if grouped is not None:
        return grouped[0], grouped[1], lambda: model
    logits = last.input
    classes = int(logits.shape[-1])
    recalibration = keras.layers.Dense(
        classes, kernel_initializer="identity", bias_initializer="zeros", name="field_recalibration"
    )

    def adapted() -> Any:
        probabilities = keras.layers.Softmax(name="probabilities")(recalibration(logits))
        return keras.Model(model.inputs, probabilities, name=f"{model.name}_adapted")

    recalibration.build((None, classes))
    return keras.Model(model.inputs, logits), recalibration, adapted


def input_spec(stored: dict[str, Any], size: tuple[int, int]) -> InputSpec:
    """The preprocessing `ecolens train` recorded in the .h5 (the model's own size wins)."""
    known = {f.name for f in dataclasses.fields(InputSpec)}
    values = {k: v for k, v in dict(stored.get("input", {})).items() if k in known}
    for key in ("mean", "std"):
        if key in values:
            values[key] = tuple(values[key])
    values.update(height=size[0], width=size[1])
    return InputSpec(**values)


def extract(features: Any, samples: list[Sample], spec: InputSpec, what: str) -> np.ndarray:
    """Trunk features of every sample, in batches (the trunk runs once per image)."""
    rows = []
    for start in range(0, len(samples), 32):
        batch = np.stack([to_model_input(load_image(s.path), spec) for s in samples[start : start + 32]])
        rows.append(np.asarray(features.predict(batch, verbose=0), dtype=np.float64))
    log(f"features of {len(samples)} {what} images")
    return np.concatenate(rows).reshape(len(samples), -1)


# --- fitting in numpy -------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def balanced_weights(y: np.ndarray, classes: int, total: float) -> np.ndarray:
    """Per-sample weights giving each class half of ``total``."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    per_class = np.divide(total / classes, counts, out=np.zeros_like(counts), where=counts > 0)
    return per_class[y]


def fit_dense(
    x: np.ndarray,
    y: np.ndarray,
    weights: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    strength: float,
    steps: int = 1000,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted multinomial logistic regression started at, and pulled towards, (w0, b0) (Adam)."""
    w, b = w0.copy(), b0.copy()
    target = np.eye(w0.shape[1])[y]
    share = weights[:, None] / weights.sum()
    moments = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    rate, beta1, beta2 = 0.01, 0.9, 0.999
    for step in range(1, steps + 1):
        error = (softmax(x @ w + b) - target) * share
        grad_w = x.T @ error + strength * (w - w0)
        grad_b = error.sum(axis=0)
        for i, (param, grad) in enumerate(((w, grad_w), (b, grad_b))):
            m, v = moments[2 * i], moments[2 * i + 1]
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad**2
            param -= rate * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return w, b


def best_shift(margin: np.ndarray, positive: np.ndarray) -> float:
    """The shift added to the positive logit that maximises balanced accuracy on these
    (positive - negative) logit margins; the middle of the best interval, nearest to 0 on ties."""
    candidates = np.unique(np.concatenate([[0.0], -margin]))
    midpoints = np.concatenate([[0.0], (candidates[1:] + candidates[:-1]) / 2])
    best, best_score = 0.0, -1.0
    for shift in sorted(midpoints, key=abs):
        predicted = margin + shift > 0
        score = 0.5 * (predicted[positive].mean() + (~predicted[~positive]).mean())
        if score > best_score + 1e-12:
            best, best_score = float(shift), score
    return best


def best_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the log loss of softmax(logits / T)."""
    grid = np.exp(np.linspace(np.log(0.2), np.log(10.0), 81))
    losses = [-np.log(softmax(logits / t)[np.arange(len(y)), y] + 1e-12).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


@dataclass(frozen=True)
class DomainGate:
    """g(x) = x . direction - offset: about 1 on the site's frames and about 0 on base images,
    along the line between their mean features. The threshold shift is applied as shift * g(x),
    so it moves the decision on the site's camera and (nearly) not on the base domain: a global
    shift that suits a dark camera costs many points on the white board. Linear in x, so it
    folds into the Dense layer like a plain shift."""

    direction: np.ndarray
    offset: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return x @ self.direction - self.offset


def domain_gate(field_x: np.ndarray, base_x: np.ndarray) -> DomainGate:
    """The gate between the field frames' and the base images' mean features (unlabelled use);
    g == 1 everywhere (a plain shift) without base images or when the means coincide."""
    if len(base_x):
        base_mean = base_x.mean(axis=0)
        difference = field_x.mean(axis=0) - base_mean
        norm = float(difference @ difference)
        if norm > 1e-12:
            direction = difference / norm
            return DomainGate(direction, float(base_mean @ direction))
    return DomainGate(np.zeros(field_x.shape[1]), -1.0)


def gated_shift(margin: np.ndarray, gate: np.ndarray, positive: np.ndarray) -> float:
    """best_shift for margin + shift * gate (gate near 1 on field frames; kept above 0.05)."""
    return best_shift(margin / np.maximum(gate, 0.05), positive)


@dataclass
class FittedHead:
    weights: np.ndarray
    bias: np.ndarray
    strength: float
    shift: float
    temperature: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.bias


def train_mixed(
    x_field: np.ndarray,
    y_field: np.ndarray,
    base_x: np.ndarray,
    base_y: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    base_share: float,
    strength: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The final layer fitted on field frames mixed with base images (each class-balanced)."""
    classes = w0.shape[1]
    x = np.concatenate([x_field, base_x])
    y = np.concatenate([y_field, base_y])
    weights = np.concatenate(
        [
            balanced_weights(y_field, classes, 1.0),
            balanced_weights(base_y, classes, base_share) if len(base_y) else np.empty(0),
        ]
    )
    return fit_dense(x, y, weights, w0, b0, strength)


def refit(
    fitted: FittedHead,
    field_x: np.ndarray,
    field_y: np.ndarray,
    base_x: np.ndarray,
    base_y: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    positive: int,
    base_share: float,
    gated: bool = False,
) -> FittedHead:
    """The same choices (strength, threshold, temperature) fitted on more field frames."""
    w, b = train_mixed(field_x, field_y, base_x, base_y, w0, b0, base_share, fitted.strength)
    w, b = fold_shift(w, b, positive, fitted.shift, domain_gate(field_x, base_x if gated else base_x[:0]))
    t = fitted.temperature
    return FittedHead(w / t, b / t, fitted.strength, fitted.shift, t)


def fold_shift(
    w: np.ndarray, b: np.ndarray, positive: int, shift: float, gate: DomainGate
) -> tuple[np.ndarray, np.ndarray]:
    """Weights whose positive logit rises by shift * gate(x)."""
    w, b = w.copy(), b.copy()
    w[:, positive] += shift * gate.direction
    b[positive] -= shift * gate.offset
    return w, b


def fit_head(
    field_x: np.ndarray,
    field_y: np.ndarray,
    folds: np.ndarray,
    base_x: np.ndarray,
    base_y: np.ndarray,
    w0: np.ndarray,
    b0: np.ndarray,
    positive: int,
    base_share: float,
    gated: bool = False,
) -> FittedHead:
    """Choose the regularisation strength, threshold and temperature on out-of-fold field
    predictions, then fit the final layer on every field frame with them folded in."""
    classes = w0.shape[1]

    def train(x_field: np.ndarray, y_field: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
        return train_mixed(x_field, y_field, base_x, base_y, w0, b0, base_share, strength)

    gate = domain_gate(field_x, base_x if gated else base_x[:0])
    field_gate = gate(field_x)
    best: tuple[float, float, float, np.ndarray] | None = None
    for strength in REGULARISATION_GRID:
        out_of_fold = np.zeros((len(field_y), classes))
        for fold in range(FOLDS):
            held = folds == fold
            if not held.any():
                continue
            w, b = train(field_x[~held], field_y[~held], strength)
            out_of_fold[held] = field_x[held] @ w + b
        margin = out_of_fold[:, positive] - np.delete(out_of_fold, positive, axis=1).max(axis=1)
        shift = gated_shift(margin, field_gate, field_y == positive)
        predicted = (margin + shift * field_gate > 0).astype(int)
        is_pos = field_y == positive
        score = 0.5 * ((predicted[is_pos] == 1).mean() + (predicted[~is_pos] == 0).mean())
        log(f"regularisation {strength:g}: out-of-fold balanced accuracy {score:.3f}")
        if best is None or score > best[0] + 1e-9:
            best = (score, strength, shift, out_of_fold)
    assert best is not None
    _, strength, shift, out_of_fold = best
    shifted = out_of_fold.copy()
    shifted[:, positive] += shift * field_gate
    temperature = best_temperature(shifted, field_y)
    w, b = fold_shift(*train(field_x, field_y, strength), positive, shift, gate)
    return FittedHead(w / temperature, b / temperature, strength, shift, temperature)


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(probabilities: np.ndarray, y: np.ndarray, labels: tuple[str, ...]) -> dict[str, Any]:
    truth = [labels[i] for i in y]
    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    metrics = classification_metrics(truth, predicted, labels, POSITIVE_LABEL)
    return {
        "n": metrics["n"],
        "balanced_accuracy": round(metrics["balanced_accuracy"], 4),
        "plastic_f1": round(metrics["f1"], 4),
        "ece": round(expected_calibration_error(probabilities, y), 4),
        "confusion_matrix": metrics["confusion_matrix"],
    }


def next_version(version: str) -> str:
    """1.0.0 -> 1.0.1; anything without a trailing number gets '.1'."""
    head, _, last = version.rpartition(".")
    if last.isdigit():
        return f"{head}.{int(last) + 1}" if head else str(int(last) + 1)
    return f"{version}.1"


def save_adapted(model: Any, out: Path, metadata: dict[str, Any]) -> None:
    """HDF5 plus EcoLens metadata, atomically (a failed write leaves nothing at ``out``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".h5", dir=out.parent, prefix=".tmp-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        model.save(tmp, include_optimizer=False)
        os.chmod(tmp, 0o644)
        write_h5_metadata(tmp, metadata)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def labelled(samples: list[Sample], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([labels.index(s.label) for s in samples], dtype=np.int64)


def check_counts(name: str, y: np.ndarray, labels: tuple[str, ...]) -> None:
    counts = np.bincount(y, minlength=len(labels))
    if counts.min() < MIN_PER_CLASS:
        described = ", ".join(f"{n} {label}" for label, n in zip(labels, counts))
        raise EcoLensError(
            f"{name} has {described}; adapt needs at least {MIN_PER_CLASS} of each class there "
            "(label more frames or change --holdout)"
        )


def adapt(options: AdaptOptions) -> dict[str, Any]:
    """Fit, compare on held-out frames, write ``options.out`` only when better; returns the report."""
    from ecolens.models import calibration_dir, eval_dir

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not 10 <= options.holdout_percent <= 80:
        raise EcoLensError("--holdout must be between 10 and 80 percent")
    field = scan(options.data, options.positive_folders)
    fit_set = [s for s in field if s.bucket >= options.holdout_percent]
    holdout = [s for s in field if s.bucket < options.holdout_percent]
    base_train = scan(options.base_data or calibration_dir(), options.positive_folders)
    base_held = scan(options.base_eval or eval_dir(), options.positive_folders)
    loaded = load_keras_model(options.base)
    stored = read_h5_metadata(options.base)
    labels = tuple(stored.get("labels") or LABELS)
    if set(labels) != set(LABELS) or loaded.outputs != len(labels):
        raise ModelError(
            f"{options.base}: adapt needs a two-class {NEGATIVE_LABEL}/{POSITIVE_LABEL} model; "
            f"it has labels {list(labels)} and {loaded.outputs} outputs"
        )
    features, head, build_adapted = split_head(loaded.model)
    spec = input_spec(stored, loaded.input_size)
    positive = labels.index(POSITIVE_LABEL)

    fit_y, hold_y = labelled(fit_set, labels), labelled(holdout, labels)
    check_counts(f"the fitting part of {options.data}", fit_y, labels)
    check_counts(f"the held-out part of {options.data}", hold_y, labels)
    log(
        f"{len(field)} field frames: {len(fit_set)} to fit, {len(holdout)} held out; "
        f"{len(base_train)} base images mixed in, {len(base_held)} base images held out"
    )

    fit_x = extract(features, fit_set, spec, "field (fit)")
    hold_x = extract(features, holdout, spec, "field (held-out)")
    base_x = extract(features, base_train, spec, "base (mixed in)")
    base_hold_x = extract(features, base_held, spec, "base (held-out)")
    base_y, base_hold_y = labelled(base_train, labels), labelled(base_held, labels)

    w0, b0 = (np.asarray(v, dtype=np.float64) for v in head.get_weights())
    folds = np.array([s.bucket % FOLDS for s in fit_set])
    fitted = fit_head(
        fit_x, fit_y, folds, base_x, base_y, w0, b0, positive, options.base_share, options.gated_threshold
    )

    def probabilities(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return softmax(x @ w + b)

    report: dict[str, Any] = {
        "base_model": str(options.base),
        "data": str(options.data),
        "field_frames": {"fit": len(fit_set), "held_out": len(holdout)},
        "base_images": {"mixed_in": len(base_train), "held_out": len(base_held)},
        "field_held_out": {
            "base": evaluate(probabilities(hold_x, w0, b0), hold_y, labels),
            "adapted": evaluate(probabilities(hold_x, fitted.weights, fitted.bias), hold_y, labels),
        },
        "base_held_out": {
            "base": evaluate(probabilities(base_hold_x, w0, b0), base_hold_y, labels),
            "adapted": evaluate(probabilities(base_hold_x, fitted.weights, fitted.bias), base_hold_y, labels),
        },
        "fitted": {
            "regularisation": fitted.strength,
            "positive_logit_shift": round(fitted.shift, 4),
            "temperature": round(fitted.temperature, 4),
            "gated_threshold": options.gated_threshold,
        },
    }
    field_scores, base_scores = report["field_held_out"], report["base_held_out"]
    gain = field_scores["adapted"]["balanced_accuracy"] - field_scores["base"]["balanced_accuracy"]
    drop = base_scores["base"]["balanced_accuracy"] - base_scores["adapted"]["balanced_accuracy"]
    report["gain"], report["base_drop"] = round(gain, 4), round(drop, 4)
    if gain < options.min_gain:
        report["written"] = False
        raise NotBetter(
            f"adapted model is not better on the {len(holdout)} held-out frames: balanced accuracy "
            f"{field_scores['base']['balanced_accuracy']:.3f} -> "
            f"{field_scores['adapted']['balanced_accuracy']:.3f} "
            f"(needs +{options.min_gain:.2f}); nothing written",
            report,
        )
    if drop > options.max_base_drop:
        report["written"] = False
        raise NotBetter(
            f"adapted model forgets the base domain: balanced accuracy on {len(base_held)} held-out "
            f"base images {base_scores['base']['balanced_accuracy']:.3f} -> "
            f"{base_scores['adapted']['balanced_accuracy']:.3f} (at most -{options.max_base_drop:.2f}); "
            "nothing written",
            report,
        )

    if options.refit_all:
        all_x, all_y = np.concatenate([fit_x, hold_x]), np.concatenate([fit_y, hold_y])
        fitted = refit(
            fitted,
            all_x,
            all_y,
            base_x,
            base_y,
            w0,
            b0,
            positive,
            options.base_share,
            options.gated_threshold,
        )
        report["refit_on_all"] = len(all_y)
        log(f"refitted on all {len(all_y)} labelled field frames")
    head.set_weights([fitted.weights.astype(np.float32), fitted.bias.astype(np.float32)])
    version = options.version or next_version(str(stored.get("version", "1.0.0")))
    metadata = dict(stored)
    metadata.update(
        labels=list(labels),
        positive_label=POSITIVE_LABEL,
        version=version,
        adapted_from={"file": options.base.name, "version": stored.get("version")},
        adaptation={"gain": report["gain"], "base_drop": report["base_drop"], **report["fitted"]},
    )
    if "input" not in metadata:
        metadata["input"] = dataclasses.asdict(spec)
    save_adapted(build_adapted(), options.out, metadata)
    report.update(written=True, out=str(options.out), version=version)
    options.out.with_suffix(".adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"saved {options.out} (version {version})")
    return report


def format_report(report: dict[str, Any]) -> str:
    """A small table: base vs adapted on the held-out field frames and base images."""
    lines = [f"{'':42}{'balanced acc':>14}{'plastic F1':>12}{'ECE':>8}"]
    for part, title in (("field_held_out", "field frames"), ("base_held_out", "base images")):
        for which in ("base", "adapted"):
            m = report[part][which]
            name = f"{which} model, {m['n']} held-out {title}"
            lines.append(f"{name:<42}{m['balanced_accuracy']:>14.3f}{m['plastic_f1']:>12.3f}{m['ece']:>8.3f}")
    lines.append(
        f"gain {report['gain']:+.3f} on field frames, {-report['base_drop']:+.3f} on base images; "
        f"temperature {report['fitted']['temperature']:.2f}, "
        f"threshold shift {report['fitted']['positive_logit_shift']:+.2f}"
    )
    return "\n".join(lines)

"""Archetypes of the Keras image classifiers users bring, built and briefly trained on photos of
their own domain (``domain``: the shipped TrashNet photos, plastic vs the rest; four waste
materials; drawn "dots vs bars" scenes, tests/support/domains.py) so their answers are not near
50/50. Random initialisation throughout: ImageNet weights cannot be downloaded here.

Each archetype records its TRUE preprocessing (what its own app feeds it), so a test can compare
the converted model on the edge with the source model fed correctly, not with the converter's
guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from ecolens.core.metadata import InputSpec
from ecolens.core.preprocess import find_images, load_image, resize_for_model
from ecolens.models import calibration_dir, eval_dir

LABELS = ("non_plastic", "plastic")
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def zero_one(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0


def minus_one_one(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 127.5 - 1.0


def raw(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32)


def caffe(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., ::-1].astype(np.float32) - CAFFE_MEAN_BGR


def grey_zero_one(pixels: np.ndarray) -> np.ndarray:
    grey = np.stack([cv2.cvtColor(p, cv2.COLOR_RGB2GRAY) for p in pixels])
    return grey[..., np.newaxis].astype(np.float32) / 255.0


@dataclass
class Archetype:
    name: str
    size: int
    true_input: Callable[[np.ndarray], np.ndarray]  # resized uint8 RGB batch -> model input
    build: Callable[[Any], Any]  # keras module -> compiled model
    flavour: str = "keras3"  # or "tf_keras"
    file_name: str = "model.h5"
    labels_txt: str | None = None  # written beside the model when set
    sigmoid: bool = False
    epochs: int = 30
    expect: str | None = None  # the input range the converter should find
    extra_flags: tuple[str, ...] = ()
    weights_only: bool = False
    notes: dict = field(default_factory=dict)
    domain: str = "trashnet"  # trashnet (shipped photos), waste4 or shapes (tests/support/domains.py)
    labels: tuple[str, ...] = ("non_plastic", "plastic")
    after_training: Callable[[Any], None] | None = None  # e.g. force a collapse


def photos() -> tuple[list[np.ndarray], np.ndarray]:
    """Every shipped photo (calibration and eval) as RGB uint8, and 1 for plastic."""
    paths = find_images(calibration_dir()) + find_images(eval_dir())
    return [load_image(p) for p in paths], np.array([int(p.parent.name == "plastic") for p in paths])


def resized(rgbs: list[np.ndarray], size: int) -> np.ndarray:
    spec = InputSpec(height=size, width=size)
    return np.stack([resize_for_model(rgb, spec) for rgb in rgbs])


def lower_bn_momentum(model: Any) -> None:
    """keras.applications use momentum 0.999: a few hundred steps leave the moving statistics
    at their initial values. 0.9 lets a brief training give a usable inference-mode model."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            lower_bn_momentum(layer)
        elif layer.__class__.__name__ == "BatchNormalization":
            layer.momentum = 0.9


def small_cnn(
    k: Any,
    size: int,
    channels: int = 3,
    head: list | None = None,
    first: list | None = None,
    pool: str = "average",
):
    """Three strided convolutions; ``pool="max"`` (global max pooling) answers "is there a dot
    anywhere", which the drawn scenes need to be learnt well (global average: 68 % on its own
    training scenes after 40 epochs, median confidence 0.64; max: 100 %, 0.9996)."""
    layers = k.layers
    return k.Sequential(
        [
            k.Input((size, size, channels)),
            *(first or []),
            layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            layers.GlobalMaxPooling2D() if pool == "max" else layers.GlobalAveragePooling2D(),
            *(head or [layers.Dense(2, activation="softmax")]),
        ]
    )


def teachable_machine(k: Any, classes: int = 2) -> Any:
    """Teachable Machine's export: Sequential[Sequential[MobileNetV2 0.35 'model1', GAP],
    Sequential[Dense(100), Dense(N, softmax)]] — the softmax hides two models deep."""
    base = k.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    base = k.Model(base.inputs, base.outputs, name="model1")
    lower_bn_momentum(base)
    features = k.Sequential([base, k.layers.GlobalAveragePooling2D()], name="sequential_1")
    head = k.Sequential(
        [
            k.Input((base.output_shape[-1],)),
            k.layers.Dense(100, activation="relu", name="dense_Dense1"),
            k.layers.Dense(classes, activation="softmax", name="dense_Dense2"),
        ],
        name="sequential_3",
    )
    return k.Sequential([k.Input((64, 64, 3)), features, head], name="sequential_4")


def mobilenet_transfer(k: Any) -> Any:
    """keras.applications MobileNetV2 + a new head, fed mobilenet_v2.preprocess_input by its app."""
    base = k.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    lower_bn_momentum(base)
    x = k.layers.GlobalAveragePooling2D()(base.output)
    return k.Model(base.input, k.layers.Dense(2, activation="softmax")(x))


def answer_one_class(model: Any) -> None:
    """A final bias that outweighs every photo: the model answers its first class whatever it
    sees, under its true range too (a real model does this when trained on a skewed set)."""
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    bias[:] = 0.0
    bias[0] = 1000.0
    dense.set_weights([kernel, bias])


def vgg_shaped(k: Any) -> Any:
    """A small VGG-style network with keras.applications' VGG layer names, trained on caffe input."""
    layers = k.layers
    inputs = k.Input((64, 64, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="block1_conv1")(inputs)
    x = layers.MaxPooling2D(name="block1_pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = layers.MaxPooling2D(name="block2_pool")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="block3_conv1")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return k.Model(inputs, layers.Dense(2, activation="softmax", name="predictions")(x))


ARCHETYPES: dict[str, Archetype] = {
    a.name: a
    for a in (
        Archetype(
            "teachable-machine",
            64,
            minus_one_one,
            teachable_machine,
            flavour="tf_keras",
            file_name="keras_model.h5",
            labels_txt="0 non_plastic\n1 plastic\n",
            epochs=8,
            expect="-1..1",
        ),
        Archetype(
            "cnn-x255-outside",
            64,
            zero_one,
            lambda k: small_cnn(k, 64),
            flavour="tf_keras",
            file_name="plastic_cnn.h5",
            expect="0..1",
        ),
        Archetype(
            "rescaling-inside",
            64,
            raw,
            lambda k: small_cnn(k, 64, first=[k.layers.Rescaling(1 / 255.0)], head=[k.layers.Dense(2)]),
            file_name="model.keras",
            expect="0..255",
        ),
        Archetype(
            "mobilenetv2-preprocess-input",
            64,
            minus_one_one,
            mobilenet_transfer,
            flavour="tf_keras",
            epochs=8,
            expect="-1..1",
        ),
        Archetype("vgg-caffe", 64, caffe, vgg_shaped, flavour="tf_keras", expect="caffe"),
        Archetype(
            "sigmoid-single",
            64,
            raw,
            lambda k: small_cnn(
                k,
                64,
                first=[k.layers.Rescaling(1 / 127.5, offset=-1.0)],
                head=[k.layers.Dense(1, activation="sigmoid")],
            ),
            sigmoid=True,
            expect="0..255",
        ),
        Archetype(
            "fixed-batch-32",
            64,
            raw,
            lambda k: k.Sequential(
                [
                    k.Input((64, 64, 3), batch_size=32),
                    k.layers.Rescaling(1 / 255.0),
                    k.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                    k.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                    k.layers.MaxPooling2D(4),
                    k.layers.Flatten(),
                    k.layers.Dense(2, activation="softmax"),
                ]
            ),
            expect="0..255",
        ),
        Archetype(
            "greyscale",
            64,
            grey_zero_one,
            lambda k: small_cnn(k, 64, channels=1),
            flavour="tf_keras",
            expect="0..1",
        ),
        Archetype(
            "tm-waste-4class",
            64,
            minus_one_one,
            lambda k: teachable_machine(k, 4),
            flavour="tf_keras",
            file_name="keras_model.h5",
            labels_txt="0 cardboard\n1 plastic\n2 glass\n3 metal\n",
            epochs=8,
            expect="-1..1",
            domain="waste4",
            labels=("cardboard", "plastic", "glass", "metal"),
        ),
        Archetype(
            "overconfident-shapes",
            64,
            zero_one,
            lambda k: small_cnn(k, 64, pool="max"),
            flavour="tf_keras",
            file_name="shapes_cnn.h5",
            epochs=40,
            expect="0..1",
            # it answers the drawn scenes alike under 0..1, -1..1 and 0..255 (max pooling of ReLUs):
            # nothing in the data tells the range, so the converter asks and its user states it
            extra_flags=("--input-range", "0..1"),
            domain="shapes",
            labels=("dots", "bars"),
        ),
        Archetype(
            "one-class-garbage",
            64,
            zero_one,
            lambda k: small_cnn(k, 64, head=[k.layers.Dense(6, activation="softmax")]),
            flavour="tf_keras",
            file_name="garbage_cnn.h5",
            epochs=1,
            expect="0..1",
            extra_flags=("--input-range", "0..1"),
            domain="trashnet6",
            labels=("cardboard", "glass", "metal", "paper", "plastic", "trash"),
            after_training=answer_one_class,
        ),
        Archetype(
            "weights-only",
            64,
            zero_one,
            lambda k: small_cnn(k, 64),
            flavour="tf_keras",
            epochs=1,
            weights_only=True,
        ),
    )
}


def keras_module(flavour: str) -> Any:
    if flavour == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def build(archetype: Archetype, folder: Path, rgbs: list[np.ndarray], truth: np.ndarray) -> Path:
    """Train the archetype (seeded) and save it as users do; returns the model path."""
    k = keras_module(archetype.flavour)
    k.utils.set_random_seed(7)
    model = archetype.build(k)
    pixels = archetype.true_input(resized(rgbs, archetype.size))
    if archetype.sigmoid:
        loss, target = "binary_crossentropy", truth.astype(np.float32)
    else:
        from_logits = getattr(model.layers[-1], "activation", None) is not None and (
            getattr(model.layers[-1].activation, "__name__", "") == "linear"
        )
        loss = k.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        target = truth
    model.compile(k.optimizers.Adam(3e-3), loss)
    counts = np.bincount(truth, minlength=len(archetype.labels)).astype(float)
    weights = {i: float(counts.max() / max(1.0, c)) for i, c in enumerate(counts)}
    batch = 32
    usable = len(pixels) - len(pixels) % batch  # a fixed-batch model needs whole batches
    order = np.random.default_rng(7).permutation(len(pixels))[:usable]
    model.fit(
        pixels[order],
        target[order],
        epochs=archetype.epochs,
        batch_size=batch,
        class_weight=weights,
        verbose=0,
    )
    if archetype.after_training is not None:
        archetype.after_training(model)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / archetype.file_name
    if archetype.weights_only:
        path = folder / "model.weights.h5"
        model.save_weights(path)
    else:
        model.save(path)
    if archetype.labels_txt is not None:
        (folder / "labels.txt").write_text(archetype.labels_txt)
    return path


def source_probabilities(model: Any, archetype: Archetype, rgbs: list[np.ndarray]) -> np.ndarray:
    """The source model fed its true preprocessing: the answers a correct conversion must give."""
    pixels = archetype.true_input(resized(rgbs, archetype.size))
    raw_out = np.concatenate(
        [np.asarray(model(pixels[i : i + 32], training=False)) for i in range(0, len(pixels), 32)]
    )
    if archetype.sigmoid:
        return np.concatenate([1.0 - raw_out, raw_out], axis=1)
    if raw_out.min() < 0 or not np.allclose(raw_out.sum(axis=1), 1.0, atol=1e-3):
        exp = np.exp(raw_out - raw_out.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
    return raw_out


def domain_folder(archetype: Archetype, root: Path) -> Path:
    """The photos a user of this archetype has (class sub-folders): what they train on and pass
    to `--calibration`. Made once below ``root`` and reused."""
    from tests.support import domains

    if archetype.domain in ("trashnet", "trashnet6"):
        return calibration_dir()
    folder = root / archetype.domain
    if not folder.is_dir():
        if archetype.domain == "waste4":
            domains.waste4(folder)
        else:
            domains.shapes(folder, 150)
    return folder


def training_photos(archetype: Archetype, root: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """What the archetype is trained on: every photo of its domain with its label index."""
    from tests.support import domains

    if archetype.domain == "trashnet":
        return photos()
    paths, truth = domains.labelled_photos(domain_folder(archetype, root), archetype.labels)
    return [load_image(p) for p in paths], truth


def unseen_photos(archetype: Archetype, root: Path) -> list[Path]:
    """Photos of the archetype's domain that calibration did not use: the converter's held-out
    part of its `--calibration` folder, or for drawn scenes fresh ones never seen at all."""
    from ecolens.convert.photos import split

    from tests.support import domains

    if archetype.domain == "shapes":
        fresh = root / "shapes-unseen"
        if not fresh.is_dir():
            domains.shapes(fresh, 40, salt="unseen")
        return find_images(fresh)
    if archetype.domain == "trashnet":
        return find_images(eval_dir())
    return split(domain_folder(archetype, root))[1]

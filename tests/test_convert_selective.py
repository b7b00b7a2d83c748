"""int8-selective's search, without TensorFlow: which layers a candidate keeps in float, and that
the candidates share one calibration and stop at the first that passes the proof (the real
conversion is tested end to end in tests/test_convert_domain.py)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from ecolens.convert import attempts
from ecolens.convert.attempts import Attempt, Session
from ecolens.convert.options import ConvertOptions
from ecolens.convert.selective import KEPT_STEPS, kept_layers, layer_errors
from ecolens.core.metadata import InputSpec

DUMP = """op_name,tensor_idx,scale,mean_squared_error,tensor_name
CONV_2D,5,0.1,0.0001,conv1
DEPTHWISE_CONV_2D,9,0.1,0.0025,dw1
CONV_2D,7,0.1,0.0004,conv0
CONV_2D,12,0.2,0.04,pw1
ADD,15,0.0,0.5,no_scale
CONV_2D,20,0.1,0.0009,head
"""


def test_layers_come_in_graph_order_with_their_error_in_quantization_steps() -> None:
    layers = layer_errors(DUMP)
    assert [name for name, _, _ in layers] == ["conv1", "conv0", "dw1", "pw1", "head"]
    assert dict((name, round(error, 3)) for name, error, _ in layers)["pw1"] == 1.0  # sqrt(.04) / .2


def test_a_candidate_keeps_the_first_n_and_the_n_worst() -> None:
    layers = layer_errors(DUMP)
    # first 2: conv1, conv0; worst 2: pw1 (1.0), dw1 (0.5)
    assert [name for name, _, _ in kept_layers(layers, 2)] == ["conv1", "conv0", "dw1", "pw1"]
    assert [name for name, _, _ in kept_layers(layers, 1)] == ["conv1", "pw1"]
    assert len(kept_layers(layers, 16)) == len(layers)


LAYERS = [(f"layer{i}", float(i % 7), i) for i in range(40)]


class FakeDebugger:
    """Counts calibrations (constructions) and quantizations."""

    made = 0

    def __init__(self, model: Any, tensors: list[np.ndarray], verbose: bool = False) -> None:
        FakeDebugger.made += 1
        self.layers = LAYERS
        self.quantized_with: list[int] = []

    def steps(self) -> list[int]:
        return list(KEPT_STEPS)

    def quantized(self, kept: int) -> bytes:
        self.quantized_with.append(kept)
        return b"flatbuffer"

    def kept(self, count: int) -> list[dict[str, Any]]:
        return [{"layer": name, "rmse_over_scale": e} for name, e, _ in kept_layers(self.layers, count)]


@pytest.mark.parametrize(("passes_from", "tried"), [(4, [2, 4]), (2, [2]), (99, [2, 4, 8, 16])])
def test_candidates_share_one_calibration_and_stop_at_the_first_that_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passes_from: int, tried: list[int]
) -> None:
    FakeDebugger.made = 0
    monkeypatch.setattr(attempts, "SelectiveInt8", FakeDebugger)
    meta = SimpleNamespace(input=InputSpec(height=8, width=8))
    session = Session(
        ConvertOptions(source=tmp_path / "m.h5"),
        SimpleNamespace(model=None),
        lambda mode: meta,
        [np.zeros((8, 8, 3), np.uint8)] * 3,
        None,
    )
    judged: list[int] = []

    def judge(mode: str, flatbuffer: bytes, directory: Path, started: float, extra: dict) -> Attempt:
        n = len(extra["kept_in_float"])
        judged.append(n)
        path = directory / f"{len(judged)}.tflite"
        path.write_bytes(flatbuffer)
        agreement = 0.99 if n >= len(kept_layers(LAYERS, passes_from)) else 0.9
        row = {"mode": mode, "passed": agreement > 0.98, "agreement": agreement, **extra}
        return Attempt(mode, path, row, None)

    monkeypatch.setattr(session, "judge", judge)
    result = session.selective(tmp_path, None)
    assert FakeDebugger.made == 1  # one calibration for every candidate
    assert [c["n"] for c in result.row["candidates"]] == tried
    assert result.row["passed"] == (passes_from <= KEPT_STEPS[-1])
    assert list(tmp_path.glob("*.tflite")) == [result.path]  # the candidates it did not keep are gone

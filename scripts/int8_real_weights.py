"""Print how `ecolens convert` quantizes MobileNet-family models with real ImageNet weights (#24):
the Teachable Machine export in tests/data/public/teachable-machine-waste4 as published, and a
keras.applications MobileNetV2 transfer model made from that export's base weights with a new
six-material head trained here, fed mobilenet_v2.preprocess_input as its user would. Each is
converted labels only with `--calibration` photos of its classes, then compared with its source
on TrashNet development photos calibration never saw: agreement where the source decides by more
than 0.1 and on all photos, size, LiteRT latency against full int8 in the converter's run.

    .venv/bin/python scripts/int8_real_weights.py --work /tmp/int8-real [--dataset DIR]

Needs the TrashNet development set (default ../shared/datasets/trashnet-112). Photos are split by a
hash of the file name: the transfer model trains on half, calibration gets 20 %, the rest is unseen.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ecolens.convert.loading import load_keras_model  # noqa: E402
from ecolens.convert.validate import margins, source_inputs  # noqa: E402
from ecolens.core.classifier import Classifier  # noqa: E402
from ecolens.core.metadata import InputSpec, read_metadata  # noqa: E402
from ecolens.core.preprocess import find_images, load_image, to_model_input  # noqa: E402

from ecolens.cli import main as ecolens  # noqa: E402

EXPORT = ROOT / "tests" / "data" / "public" / "teachable-machine-waste4"
MATERIALS = ("cardboard", "glass", "metal", "paper", "plastic", "trash")
MINUS_ONE_ONE = InputSpec(height=224, width=224, mean=(127.5,) * 3, std=(127.5,) * 3)


def split(dataset: Path, classes: tuple[str, ...], work: Path) -> dict[str, list[Path]]:
    """work/{cal,unseen}/<class>/ by file-name hash; returns the training photos by class too."""
    parts: dict[str, list[Path]] = {"train": []}
    for name in classes:
        files = sorted(
            (dataset / name).glob("*.jpg"), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest()
        )
        for i, path in enumerate(files):
            part = "train" if i < 0.5 * len(files) else "cal" if i < 0.7 * len(files) else "unseen"
            if part == "train":
                parts["train"].append(path)
                continue
            target = work / part / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / path.name)
    return parts


def transfer_model(work: Path, train: list[Path]) -> Path:
    """keras.applications MobileNetV2 0.35 with the export's ImageNet weights, a new head."""
    import tf_keras as keras

    export = load_keras_model(EXPORT / "keras_model.h5").model
    weights = {layer.name: layer for layer in export.layers[0].layers[0].layers}
    base = keras.applications.MobileNetV2(
        input_shape=(224, 224, 3), alpha=0.35, include_top=False, weights=None
    )
    for layer in base.layers:
        if layer.name in weights and layer.get_weights():
            layer.set_weights(weights[layer.name].get_weights())
    base.trainable = False
    features = keras.layers.GlobalAveragePooling2D()(base.output)
    outputs = keras.layers.Dense(len(MATERIALS), activation="softmax")(keras.layers.Dropout(0.2)(features))
    model = keras.Model(base.input, outputs)
    inputs = np.stack([to_model_input(load_image(p), MINUS_ONE_ONE) for p in train])
    truth = np.array([MATERIALS.index(p.parent.name) for p in train])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(inputs, truth, epochs=8, batch_size=32, verbose=0)
    path = work / "mobilenet_transfer.h5"
    model.save(path)
    (work / "labels.txt").write_text("\n".join(MATERIALS) + "\n")
    return path


def measure(source: Path, work: Path) -> dict:
    out = work / "converted.tflite"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = ecolens(["convert", str(source), "--calibration", str(work / "cal"), "--out", str(out)])
    if rc != 0:
        return {"mode": "refused", "why": err.getvalue().strip().splitlines()[-1]}
    report = json.loads(out.with_name("converted.report.json").read_text())
    meta = read_metadata(out)
    rgbs = [load_image(p) for p in find_images(work / "unseen")]
    truth = load_keras_model(source).model.predict(source_inputs(rgbs, meta.input), verbose=0)
    classifier = Classifier(out)
    edge = np.stack([classifier.predict(rgb)[0] for rgb in rgbs])
    same = truth.argmax(axis=1) == edge.argmax(axis=1)
    decided = margins(truth) > 0.1
    row = report["attempts"][-1]
    return {
        "mode": meta.quantization,
        "kept": len(row.get("kept_in_float", [])),
        "int8": [a["agreement"] for a in report["attempts"] if a["mode"] == "int8"],
        "decided": (float(same[decided].mean()), int(decided.sum())),
        "all": (float(same.mean()), len(same)),
        "bytes": out.stat().st_size,
        "latency_vs_int8": (row.get("candidates") or [{}])[-1].get("latency_vs_int8"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "datasets" / "trashnet-112")
    args = parser.parse_args()
    if not args.dataset.is_dir():
        print(f"error: TrashNet development set not found: {args.dataset}", file=sys.stderr)
        return 2
    rows = []
    export_work = args.work / "teachable-machine-waste4"
    split(args.dataset, ("cardboard", "plastic", "glass", "metal"), export_work)
    for name in ("keras_model.h5", "labels.txt"):
        shutil.copy(EXPORT / name, export_work / name)
    rows.append(
        ("Teachable Machine export (4 materials)", measure(export_work / "keras_model.h5", export_work))
    )
    transfer_work = args.work / "mobilenetv2-transfer"
    parts = split(args.dataset, MATERIALS, transfer_work)
    rows.append(("keras.applications MobileNetV2 transfer (6 materials)", measure(
        transfer_model(transfer_work, parts["train"]), transfer_work)))  # fmt: skip
    print(
        "| model | full int8 (proof, decided) | mode chosen | unseen agreement, decided | all | size"
        " | latency vs int8 |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in rows:
        if r["mode"] == "refused":
            print(f"| {name} | | refused: {r['why']} | | | | |")
            continue
        print(
            f"| {name} | {' / '.join(f'{a:.1%}' for a in r['int8'])} "
            f"| {r['mode']} ({r['kept']} layers in float) "
            f"| {r['decided'][0]:.1%} of {r['decided'][1]} | {r['all'][0]:.1%} of {r['all'][1]} "
            f"| {r['bytes'] / 1e6:.2f} MB | {r['latency_vs_int8'] or '-'}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the corpus table of issue #24: each archetype of tests/support/corpus.py converted as a
user would (labels only, `--calibration` with photos of its own domain, the true range only where
the archetype's user states it), then the mode chosen (layers kept in float), top-1 agreement with
the source fed its true preprocessing on photos of its domain that calibration did not use, size
and LiteRT latency (median of --repeats single-image runs; int8-selective also against full
int8 measured in the same run).

    .venv/bin/python scripts/convert_corpus_table.py --work /tmp/corpus [--only NAME ...]

The domains are made (tests/support/domains.py): optimistic proxies for users' photos."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ecolens.convert.validate import tflite_ms  # noqa: E402
from ecolens.core.classifier import Classifier  # noqa: E402
from ecolens.core.preprocess import load_image  # noqa: E402

from ecolens.cli import main as ecolens  # noqa: E402
from tests.support.corpus import (  # noqa: E402
    ARCHETYPES,
    build,
    domain_folder,
    keras_module,
    source_probabilities,
    training_photos,
    unseen_photos,
)

# int8-selective may cost at most this much latency over full int8 (issue #24).
LATENCY_LIMIT = 1.5


def layer_names(kept: list[dict]) -> str:
    """Short names: the debugger's tensor names join every fused op's name with ';'."""
    return ", ".join(k["layer"].split(";")[0] for k in kept)


def row(name: str, work: Path, repeats: int) -> dict:
    archetype = ARCHETYPES[name]
    folder = work / name
    source = folder / archetype.file_name
    if not source.exists():
        rgbs, truth = training_photos(archetype, work)
        source = build(archetype, folder, rgbs, truth)
    out = folder / "converted.tflite"
    out.unlink(missing_ok=True)
    labels = [] if archetype.labels_txt else ["--labels", ",".join(archetype.labels)]
    args = [str(source), "--out", str(out), *labels, "--calibration", str(domain_folder(archetype, work))]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = ecolens(["convert", *args, *archetype.extra_flags])
    if rc != 0:
        refusal = [line for line in err.getvalue().splitlines() if "error:" in line]
        return {"archetype": name, "mode": "refused", "why": refusal[-1] if refusal else f"exit {rc}"}
    report = json.loads(out.with_name("converted.report.json").read_text())
    rgbs = [load_image(p) for p in unseen_photos(archetype, work)]
    model = keras_module(archetype.flavour).models.load_model(source, compile=False)
    truth = source_probabilities(model, archetype, rgbs)
    classifier = Classifier(out)
    edge = np.stack([classifier.predict(rgb)[0] for rgb in rgbs])
    kept = report["validation"].get("kept_in_float", [])
    result = {
        "archetype": name,
        "mode": report["mode"] + (f" ({len(kept)} kept in float: {layer_names(kept)})" if kept else ""),
        "agreement": float(np.mean(truth.argmax(axis=1) == edge.argmax(axis=1))),
        "photos": len(rgbs),
        "bytes": out.stat().st_size,
        "ms": tflite_ms(out, rgbs, repeats),
        "warnings": report.get("warnings", []),
    }
    if "int8_latency_ms" in report["validation"]:  # both measured by the converter in one run
        result["int8_ms"] = report["validation"]["int8_latency_ms"]
        result["selective_ms"] = report["validation"]["tflite_latency_ms"]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for built models (reused)")
    parser.add_argument("--only", nargs="*", help="archetype names (default: every convertible one)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    names = args.only or [n for n, a in ARCHETYPES.items() if not a.weights_only]
    rows = [row(name, args.work, args.repeats) for name in names]
    print("| archetype | mode chosen (layers kept in float) | agreement on unseen photos | size | latency |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["mode"] == "refused":
            print(f"| {r['archetype']} | refused: {r['why']} | | | |")
            continue
        latency = f"{r['ms']:.2f} ms"
        if "int8_ms" in r:
            ratio = r["selective_ms"] / r["int8_ms"]
            latency += (
                f" (in the converter's run: {r['selective_ms']:.2f} ms vs full int8 {r['int8_ms']:.2f} ms, "
                f"x{ratio:.2f}, {'within' if ratio <= LATENCY_LIMIT else 'ABOVE'} the x{LATENCY_LIMIT} limit)"
            )
        note = " (warned: " + "; ".join(r["warnings"]) + ")" if r["warnings"] else ""
        print(
            f"| {r['archetype']} | {r['mode']}{note} | {r['agreement']:.1%} of {r['photos']} | "
            f"{r['bytes'] / 1e6:.2f} MB | {latency} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

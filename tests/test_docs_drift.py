"""The docs say what the code does: the values that drift (the shipped model's version, its TF
Serving version, its input size, the sample clip's counts) are read from the docs and compared
with the code and the model's metadata; every shell example either names the test that runs it
or says what it needs that a test machine lacks."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from ecolens.core.metadata import read_metadata
from ecolens.models import reference_tflite, samples_dir

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCK = re.compile(r"^```(bash|sh|shell|console)\s*$")
MARKER = re.compile(r"^<!-- (runs: (?P<runs>\S+)|needs: (?P<needs>[a-z]+)) -->$")
# what a marked example needs that the test machine lacks
NEEDS = {
    "pi": "a Raspberry Pi (docs/raspberry-pi.md)",
    "camera": "a camera",
    "lan": "a broker or bin on the LAN (broker.lan, bin-7)",
    "root": "root and the system's folders (/etc, /opt, systemd)",
    "network": "PyPI or apt",
    "files": "your own model or photos (keras_model.h5, bottle.jpg)",
    "dataset": "a copy of TrashNet",
    "minutes": "many minutes of a quiet machine (benchmarks that redraw docs/img)",
}


def text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def metadata():
    return read_metadata(reference_tflite())


def test_result_examples_show_the_shipped_model(metadata):
    shown = []
    for path in DOCS:
        for version in re.findall(r'"name": "ecolens-plastic-lite0", "version": "([^"]+)"', text(path)):
            shown.append((path.name, version))
    assert {"README.md", "api.md"} <= {name for name, _ in shown}
    assert all(version == metadata.version for _, version in shown), (metadata.version, shown)


def test_tf_serving_version_in_the_api_doc_is_the_models(metadata):
    from ecolens.edge.api.tfserving import tf_version

    class Loaded:  # tf_version reads only the classifier's metadata
        def __init__(self) -> None:
            self.metadata = metadata

    served = tf_version(Loaded())  # type: ignore[arg-type]
    api = text(REPO / "docs" / "api.md")
    paths = re.findall(r"/versions/(\d+):predict", api)
    statuses = re.findall(r'"model_version_status":\[\{"version":"(\d+)"', api)
    stated = re.findall(r"number of its metadata version, `(\d+)`", api)
    assert paths and statuses and stated
    assert set(paths) | set(statuses) | set(stated) == {served}


def test_input_size_in_the_docs_is_the_models(metadata):
    sizes = [(int(h), int(w)) for path in DOCS for h, w in re.findall(r"only sees (\d+)×(\d+)", text(path))]
    assert sizes and set(sizes) == {(metadata.input.height, metadata.input.width)}


def test_the_metrics_example_counts_the_sample_clips_items():
    manifest = json.loads((samples_dir() / "clip" / "manifest.json").read_text())
    labels = Counter(item["label"] for item in manifest["items"])
    daemon = text(REPO / "docs" / "daemon.md")
    shown = {
        label: float(n)
        for label, n in re.findall(r'ecolens_daemon_items_total\{label="(\w+)"\} ([\d.]+)', daemon)
    }
    published = re.findall(r"^ecolens_daemon_published_total ([\d.]+)$", daemon, re.MULTILINE)
    assert shown == {label: float(n) for label, n in labels.items()}
    assert published == [f"{float(len(manifest['items']))}"]
    assert f"Items: {labels['plastic']} plastic, {labels['non_plastic']} non_plastic" in daemon


def shell_examples() -> list[tuple[str, int, str | None]]:
    """(doc, line, the marker line before it or None) for every shell block."""
    found = []
    for path in DOCS:
        lines = text(path).splitlines()
        for index, line in enumerate(lines):
            if SHELL_BLOCK.match(line):
                before = lines[index - 1] if index else ""
                found.append(
                    (str(path.relative_to(REPO)), index + 1, before if MARKER.match(before) else None)
                )
    return found


def test_every_shell_example_is_run_by_a_test_or_says_what_it_needs():
    examples = shell_examples()
    assert len(examples) > 40
    unmarked = [f"{doc}:{line}" for doc, line, marker in examples if marker is None]
    assert not unmarked, "put <!-- runs: tests/FILE.py::TEST --> or <!-- needs: WHAT --> before " + str(
        unmarked
    )
    for doc, line, marker in examples:
        match = MARKER.match(marker or "")
        assert match
        if match["needs"]:
            assert match["needs"] in NEEDS, f"{doc}:{line}: needs one of {sorted(NEEDS)}"
            continue
        target, _, test = match["runs"].partition("::")
        assert (REPO / target).is_file(), f"{doc}:{line}: {target} does not exist"
        if test:
            assert re.search(rf"^def {re.escape(test)}\(", text(REPO / target), re.MULTILINE), (
                f"{doc}:{line}: no test {test} in {target}"
            )


def rounds_to(value: float, figure: str) -> bool:
    """``figure`` is ``value`` at its number of decimals (half up or half even: 87.05 -> 87.1)."""
    decimals = len(figure.split(".")[1])
    return abs(value - float(figure)) <= 0.5 * 10**-decimals + 1e-9


def quoted_figures(table_rows: list[str]) -> list[str]:
    """The decimal figures of a Markdown table's cells, leaving out remarks in parentheses."""
    figures = []
    for row in table_rows:
        for cell in row.strip("|").split("|"):
            plain = re.sub(r"\([^)]*\)", "", cell.replace("**", ""))
            figures += re.findall(r"\d+\.\d+", plain)
    return figures


def test_readme_benchmark_tables_are_the_recorded_run():
    """Every figure of the README's benchmark tables is in the recorded run it cites (the whole
    output of scripts/benchmarks.py), at the README's rounding: no figure typed by hand."""
    readme = text(REPO / "README.md")
    cited = re.search(r"\[docs/(benchmarks-[\d-]+\.txt)\]", readme)
    assert cited, "the README cites the recorded benchmark run"
    recorded = text(REPO / "docs" / cited.group(1))
    values = [float(v) for v in re.findall(r"\d+\.\d+", recorded)]
    section = readme[readme.index("**The figures below come from one run") :]
    section = section[: section.index("`ecolens benchmark coldstart`")]
    rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
    figures = quoted_figures([row for row in rows if re.search(r"\|\s*[\d`]", row)])
    assert len(figures) > 20, figures
    for figure in figures:
        assert any(rounds_to(value, figure) for value in values), f"{figure} is not in {cited.group(1)}"


def tables_after_a_recorded_run(path: Path) -> list[tuple[str, list[str]]]:
    """(recorded file, table rows) for each Markdown table whose last paragraph above names a
    recorded benchmark run (`benchmarks-DATE.txt`)."""
    lines, found, index = text(path).splitlines(), [], 0
    while index < len(lines):
        if lines[index].startswith("|"):
            end = index
            while end < len(lines) and lines[end].startswith("|"):
                end += 1
            above = "\n".join(lines[max(0, index - 12) : index])
            cited = re.findall(r"(benchmarks-[\d-]+\.txt)", above)
            rows = [r for r in lines[index + 2 : end] if not r.startswith("| ---")]
            if cited:
                found.append((cited[-1], rows))
            index = end
        index += 1
    return found


@pytest.mark.parametrize("doc", sorted((REPO / "docs").glob("*.md")), ids=lambda p: p.name)
def test_doc_benchmark_tables_are_the_recorded_run(doc: Path):
    """A table right after a paragraph that names a recorded run holds that run's figures only."""
    for recorded, rows in tables_after_a_recorded_run(doc):
        values = [float(v) for v in re.findall(r"\d+\.\d+", text(REPO / "docs" / recorded))]
        for figure in quoted_figures(rows):
            found = any(rounds_to(value, figure) for value in values)
            assert found, f"{doc.name}: {figure} is not in {recorded}"

"""The layering of ARCHITECTURE.md, enforced: which top-level folder may import which.

The folders are mapped onto ``ecolens.*`` by setup.py, so import-linter's grimp (which walks the
one folder of a top-level package) cannot see them; this reads every import statement with
``ast`` instead, including imports inside functions (the lazy ones are imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("ecolens", "core", "edge", "fleet", "convert", "train", "bench", "models")

# folder -> the ecolens.* layers it must never import
FORBIDDEN = {
    "models": {"ecolens", "core", "edge", "fleet", "convert", "train", "bench"},
    "core": {"ecolens", "edge", "fleet", "convert", "train", "bench"},
    "edge": {"ecolens", "fleet", "convert", "train", "bench"},
    "fleet": {"ecolens", "edge", "convert", "train", "bench"},
    "convert": {"ecolens", "edge", "fleet", "train", "bench"},
    "train": {"ecolens", "edge", "fleet", "bench"},
    "bench": {"ecolens"},
    "ecolens": set(),
}
# What a bin installs must never pull in TensorFlow or PyTorch.
DEVICE_FOLDERS = ("core", "edge")
TRAINING_LIBRARIES = {"tensorflow", "keras", "tf_keras", "torch"}
# A module longer than this has more than one job: split it by job, not in halves.
MAX_MODULE_LINES = 450


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_of(module: str) -> str | None:
    """``ecolens.core.x`` -> ``core``; ``ecolens.cli`` / ``ecolens.commands.x`` -> ``ecolens``;
    the bare ``ecolens`` package (only ``__version__``) belongs to no layer: anyone may read it."""
    parts = module.split(".")
    if module == "ecolens":
        return None
    if parts[0] == "tests":
        return "tests"
    if parts[0] != "ecolens":
        return None
    if len(parts) > 1 and parts[1] in FOLDERS:
        return parts[1]
    return "ecolens"


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_layer_imports_only_the_layers_below_it(folder):
    violations = []
    for path in sources(folder):
        for line, module in imported_modules(path):
            layer = layer_of(module)
            if layer == "tests" or (layer in FORBIDDEN[folder] and layer != folder):
                violations.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("folder", DEVICE_FOLDERS)
def test_the_device_code_never_imports_a_training_library(folder):
    violations = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sources(folder)
        for line, module in imported_modules(path)
        if module.split(".")[0] in TRAINING_LIBRARIES
    ]
    assert not violations, "\n".join(violations)


def test_no_product_module_is_longer_than_the_limit():
    too_long = [
        f"{path.relative_to(REPO)}: {lines} lines"
        for folder in FOLDERS
        for path in sources(folder)
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"over {MAX_MODULE_LINES} lines (split by job):\n" + "\n".join(too_long)


def test_the_rule_catches_a_forbidden_import(tmp_path):
    """The checker itself: an edge module importing the fleet is seen, with its line."""
    module = tmp_path / "bad.py"
    module.write_text("import os\n\n\ndef later():\n    from ecolens.fleet.report import build_report\n")
    assert [(line, layer_of(name)) for line, name in imported_modules(module)] == [
        (1, None),
        (5, "fleet"),
    ]

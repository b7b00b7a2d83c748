"""The layering of ARCHITECTURE.md, enforced: which top-level folder may import which.

The folders are mapped onto ``ecolens.*`` by setup.py, so import-linter's grimp (which walks the
one folder of a top-level package) cannot see them; this reads every import statement with
``ast`` instead, including imports inside functions (the lazy ones are imports too)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("ecolens", "core", "edge", "fleet", "convert", "train", "bench", "models")
# Every product folder, for the rule against import circles.
PRODUCT_FOLDERS = FOLDERS
# Import circles known today, each to be broken by whoever owns its modules; a circle may shrink
# (a subset of one of these passes), never grow or appear. Empty: none is pending.
PENDING_CIRCLES: tuple[frozenset[str], ...] = ()

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


# --- MQTT: one client, one wire vocabulary -------------------------------------------------------

# The one module that may import paho: every MQTT connection goes through its MqttClient.
PAHO_MODULE = "core/mqtt/client.py"
# The one module that spells topics; everyone else calls its builders and filters.
WIRE_MODULE = "core/wire.py"
# A topic literal: a string (an f-string's fields read as "{}") with a level that ends in one of
# the bins' leaves or names the model topics, e.g. f"{prefix}/{device}/result", "model/manifest",
# f"{prefix}/models/{sha}". Not: a bare word ("status" is also a JSON key), HTTP routes (they
# start with "/"), sentences (they hold a space), docstrings.
TOPIC_LITERAL = re.compile(r"/(result|status|stats|sample)$|(^|/)model/(manifest|state)\b|(^|/)models/")


def docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal but docstrings; an f-string as one text."""
    tree = ast.parse(path.read_text(), str(path))
    skip = docstring_nodes(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "{}" for v in node.values]
            found.append((node.lineno, "".join(str(p) for p in parts)))
            skip.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found.append((node.lineno, node.value))
    return found


def is_topic_literal(text: str) -> bool:
    return (
        not text.startswith("/") and not any(c.isspace() for c in text) and bool(TOPIC_LITERAL.search(text))
    )


def test_only_the_mqtt_client_imports_paho():
    violations = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for folder in PRODUCT_FOLDERS
        for path in sources(folder)
        if str(path.relative_to(REPO)) not in {PAHO_MODULE}
        for line, module in imported_modules(path)
        if module.split(".")[0] == "paho"
    ]
    assert not violations, "\n".join(violations)


def test_topics_are_spelled_only_in_the_wire_module():
    violations = [
        f"{path.relative_to(REPO)}:{line} {text!r}"
        for folder in PRODUCT_FOLDERS
        for path in sources(folder)
        if str(path.relative_to(REPO)) != WIRE_MODULE
        for line, text in string_literals(path)
        if is_topic_literal(text)
    ]
    assert not violations, "\n".join(violations)


def test_the_topic_rule_catches_a_topic_literal(tmp_path):
    """The checker itself: topics built by hand are seen; routes, sentences and docstrings not."""
    module = tmp_path / "bad.py"
    module.write_text(
        '"""Results on <prefix>/<device>/result."""\n'
        "import paho.mqtt.client\n"
        'ROUTE = "/api/status"\n'
        'HELP = "send samples on <prefix>/<device_id>/sample"\n'
        "def topics(prefix, device, sha):\n"
        '    return [f"{prefix}/{device}/result", "bins/+/stats", f"{prefix}/models/{sha}/0",\n'
        '            f"{prefix}/{device}/model/manifest"]\n'
    )
    assert sorted(line for line, text in string_literals(module) if is_topic_literal(text)) == [6, 6, 6, 7]
    assert [(line, name.split(".")[0]) for line, name in imported_modules(module)] == [(2, "paho")]


def module_name(path: Path, root: Path = REPO) -> str:
    """``fleet/storage/__init__.py`` -> ``ecolens.fleet.storage``; ``ecolens/cli.py`` -> ``ecolens.cli``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "ecolens" else ["ecolens", *parts])


def import_graph(paths: list[Path], root: Path = REPO) -> dict[str, set[str]]:
    """Product module -> the product modules it imports: anywhere in the file (in functions, under
    TYPE_CHECKING), relative imports resolved, ``from package import module`` to the module."""
    modules = {module_name(path, root): path for path in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:
                        targets.add(submodule)
                    elif base in modules:
                        targets.add(base)
        graph[name] = targets - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            target = next(edges, None)
            if target is not None:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_no_two_product_modules_import_each_other():
    """Directly or through a longer circle, type-checking and lazy imports included."""
    paths = [path for folder in PRODUCT_FOLDERS for path in sources(folder)]
    new = [
        sorted(circle)
        for circle in circles(import_graph(paths))
        if not any(circle <= pending for pending in PENDING_CIRCLES)
    ]
    assert not new, "import circles:\n" + "\n".join(" <-> ".join(circle) for circle in new)


def test_the_circle_rule_sees_a_circle_through_a_type_checking_import(tmp_path):
    """The checker itself: a <-> b through ``if TYPE_CHECKING`` and a relative import, c -> a alone."""
    package = tmp_path / "edge" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ecolens.edge.pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .a import A\n"
    )
    (package / "c.py").write_text("def later():\n    from ecolens.edge.pkg.a import x\n")
    graph = import_graph(sorted(package.glob("*.py")), tmp_path)
    assert graph["ecolens.edge.pkg.b"] == {"ecolens.edge.pkg.a"}
    assert circles(graph) == [frozenset({"ecolens.edge.pkg.a", "ecolens.edge.pkg.b"})]

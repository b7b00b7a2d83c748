"""Where a model's labels come from: --labels, --labels-file, a labels.txt beside the model
(Teachable Machine writes ``0 name`` lines), then the .h5's own EcoLens metadata."""

from __future__ import annotations

import re
from pathlib import Path

from ecolens.core.errors import EcoLensError

# The reference model's two classes: what `ecolens train` labels TrashNet's folders with, and what
# the proof (validate.py) maps an evaluation folder onto when a model has exactly these labels.
POSITIVE_LABEL = "plastic"
NEGATIVE_LABEL = "non_plastic"
LABELS = (NEGATIVE_LABEL, POSITIVE_LABEL)

INDEXED = re.compile(r"^(\d+)\s+(.+)$")


def read_labels_file(path: Path) -> tuple[tuple[str, ...], bool]:
    """Labels in output order and whether the lines were Teachable Machine's ``0 name`` form."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise EcoLensError(f"cannot read labels file {path}: {exc}") from exc
    lines = [line for line in lines if line]
    matches = [INDEXED.match(line) for line in lines]
    if lines and all(matches):
        ordered = sorted((int(m.group(1)), m.group(2).strip()) for m in matches if m)
        if [i for i, _ in ordered] != list(range(len(ordered))):
            raise EcoLensError(f"{path}: numbered labels must run 0, 1, 2, ... without gaps")
        return tuple(name for _, name in ordered), True
    return tuple(lines), False


def beside(source: Path) -> Path | None:
    """MODEL.labels.txt, or labels.txt in the model's folder."""
    for candidate in (source.with_name(f"{source.stem}.labels.txt"), source.with_name("labels.txt")):
        if candidate.is_file():
            return candidate
    return None


def example(count: int) -> str:
    return ",".join(f"class{i}" for i in range(count))


def resolve(
    source: Path,
    outputs: int,
    flag: tuple[str, ...] | None,
    labels_file: Path | None,
    stored: tuple[str, ...],
) -> tuple[tuple[str, ...], str, bool]:
    """(labels, where they came from, whether a Teachable Machine labels.txt was read)."""
    if flag:
        found, where, numbered = flag, "--labels", False
    elif labels_file is not None:
        found, numbered = read_labels_file(labels_file)
        where = f"--labels-file {labels_file}"
    elif (path := beside(source)) is not None:
        found, numbered = read_labels_file(path)
        where = f"{path.name} beside the model"
    elif stored:
        found, where, numbered = stored, ".h5 metadata", False
    else:
        raise EcoLensError(
            f"{source} does not name its {outputs} classes: pass --labels {example(outputs)} "
            "(in output order), --labels-file FILE, or put a labels.txt beside the model"
        )
    if len(found) != outputs:
        raise EcoLensError(
            f"{len(found)} labels ({', '.join(found)}) from {where} but the model outputs "
            f"{outputs} classes; pass --labels {example(outputs)} in output order"
        )
    if len(set(found)) != len(found):
        raise EcoLensError(f"labels from {where} repeat a name: {', '.join(found)}")
    return tuple(found), where, numbered

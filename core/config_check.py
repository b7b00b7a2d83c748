"""What `--validate-config` adds to plain loading: a hint for a misspelt key ("did you mean")
and a check that every file the settings name exists and is readable, so a typo is found
before the service starts (or restarts in a loop under systemd)."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

# Settings that name a file which must already exist (directories and queue files are created).
REQUIRED_FILE_FIELDS = {"tls_cert", "tls_key", "ca_file", "cert_file", "key_file"}


def _section(annotation: Any) -> type[BaseModel] | None:
    """The BaseModel in ``X``, ``X | None``, ``Optional[X]``."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def did_you_mean(schema: type[BaseModel], loc: Sequence[Any]) -> str:
    """`` (did you mean 'port'?)`` for an unknown key at ``loc``, or ``""``."""
    model: type[BaseModel] | None = schema
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        model = _section(field.annotation) if field else None
        if model is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def missing_files(config: BaseModel, where: str = "") -> list[str]:
    """One line per named file that is not there or not readable."""
    problems = []
    for name in type(config).model_fields:
        value = getattr(config, name)
        dotted = f"{where}{name}"
        if isinstance(value, BaseModel):
            problems += missing_files(value, dotted + ".")
        elif isinstance(value, Path) and name in REQUIRED_FILE_FIELDS:
            problems += file_problem(dotted, value)
    return problems


def file_problem(setting: str, path: Path) -> list[str]:
    if not path.is_file():
        return [f"{setting}: file not found: {path}"]
    if not os.access(path, os.R_OK):
        return [f"{setting}: not readable by this user: {path}"]
    return []


SECRET_FIELDS = {"password", "keys"}  # keys: API keys in clear (secrets env file)


def masked(settings: Any) -> Any:
    """The effective settings as JSON-ready data, secrets replaced by ``***``."""
    if isinstance(settings, dict):
        return {k: ("***" if k in SECRET_FIELDS and v else masked(v)) for k, v in settings.items()}
    if isinstance(settings, list):
        return [masked(v) for v in settings]
    return settings


def validate_and_print(config: BaseModel, model_path: Path | None = None) -> str:
    """For `--validate-config`: prints the effective settings (secrets masked) as JSON, alone on
    stdout (so `| jq` reads it), checks the named files and the model's metadata; returns the
    verdict for stderr, raises ConfigError listing every problem otherwise."""
    import json

    from ecolens.core.errors import ConfigError, EcoLensError

    problems = missing_files(config)
    summary = ""
    if model_path is not None:
        from ecolens.core.metadata import read_metadata

        try:
            meta = read_metadata(model_path)
            summary = f"; model {meta.name} {meta.version}, labels {', '.join(meta.labels)}"
        except EcoLensError as exc:
            problems.append(f"model.path: {exc}")
    print(json.dumps(masked(config.model_dump(mode="json")), indent=2))
    if problems:
        raise ConfigError("configuration has problems:\n  " + "\n  ".join(problems))
    return "configuration OK" + summary

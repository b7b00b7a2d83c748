"""Config loading, in one place for every command: TOML file -> environment -> flags,
validated by typed pydantic sections that reject unknown keys.

Environment overrides: ``ECOLENS_<SECTION>__<KEY>=value`` (double underscore between levels),
values parsed as TOML literals when they are ones (``1883``, ``true``, ``[1, 2]``), else strings.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ecolens.core.errors import ConfigError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "ECOLENS_"
T = TypeVar("T", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    """Which .tflite to run and how (shared by the daemon, the API and classify)."""

    path: Path | None = Field(None, description="the .tflite model; default: the shipped reference model")
    threads: int | None = Field(
        None, ge=1, le=64, description="interpreter threads; default: LiteRT's choice"
    )
    min_confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="results below this confidence are flagged uncertain"
    )

    def resolved_path(self) -> Path:
        if self.path is not None:
            return self.path
        from ecolens.models import reference_tflite

        return reference_tflite()


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save the file as UTF-8") from None


def parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def env_overrides(environ: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, Any]:
    """``ECOLENS_MQTT__PORT=1884`` -> ``{"mqtt.port": 1884}``."""
    found = {}
    for key, raw in environ.items():
        if key.startswith(prefix) and "__" in key:
            dotted = key[len(prefix) :].lower().replace("__", ".")
            found[dotted] = parse_env_value(raw)
    return found


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
        node = child
    node[leaf] = value


def format_validation_error(exc: ValidationError, origin: str, schema: type[BaseModel] | None = None) -> str:
    from ecolens.core.config_check import did_you_mean

    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting" + (did_you_mean(schema, error["loc"]) if schema else "")
        problems.append(f"{where}: {message}")
    return f"{origin}: " + "; ".join(problems)


def load_config(
    schema: type[T],
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build a validated config: file values, then env overrides, then flag overrides
    (``{"mqtt.host": "bin-7"}``; ``None`` values mean "flag not given")."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    merged = dict(env_overrides(os.environ if environ is None else environ))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for dotted, value in merged.items():
        set_dotted(data, dotted, value)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, str(path or "configuration"), schema)) from exc

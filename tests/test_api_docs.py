"""docs/api.md documents every API setting, endpoint and error code the code has."""

from __future__ import annotations

import re
from pathlib import Path

from ecolens.edge.api import errors
from ecolens.edge.api.settings import ApiConfig

DOC = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()


def test_every_setting_is_documented():
    for section_name, field in ApiConfig.model_fields.items():
        assert f"### `[{section_name}]`" in DOC, section_name
        section = DOC.split(f"### `[{section_name}]`", 1)[1].split("\n### ", 1)[0]
        for key in field.annotation.model_fields:
            assert re.search(rf"^\| `{key}` \|", section, re.MULTILINE), f"{section_name}.{key}"


def test_every_error_code_is_documented():
    codes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ApiError)
    }
    for code in codes:
        assert f"`{code}`" in DOC, code

"""The harness's own decisions that a cold build on another machine depends on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.arm64.rootfs import DEFAULT_MIRROR, MIRROR_ENV, apt_mirror

pytestmark = pytest.mark.arm64


@pytest.fixture(autouse=True)
def no_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_mirror_from_deb822_sources_skips_security_and_updates(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "Types: deb\n"
        "# a comment line\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_with_options(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian/ bookworm main\n"
    )
    assert apt_mirror(tmp_path) == "http://mirror.example/debian/"


def test_mirror_falls_back_to_debian_and_honours_the_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert apt_mirror(tmp_path) == DEFAULT_MIRROR
    monkeypatch.setenv(MIRROR_ENV, "http://override.example/debian")
    assert apt_mirror(tmp_path) == "http://override.example/debian"

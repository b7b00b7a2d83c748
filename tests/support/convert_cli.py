"""Running `ecolens convert` in the test process and reading its one error line: shared by the
converter's corpus and domain tests."""

from __future__ import annotations

import pytest


def convert_in_process(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``ecolens convert ARGS`` run by the real CLI entry point."""
    from ecolens.cli import main

    rc = main(["convert", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def one_error_line(err: str) -> str:
    """The single ``error:`` line a refused conversion prints, with no traceback."""
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1, err[-2000:]
    return errors[0]

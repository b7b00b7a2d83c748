"""The command line on a minimal install: no extra's module is imported to build the parser or
to classify, so a device without TensorFlow, Flask or paho still has a working `ecolens`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXTRAS_ONLY = (
    "tensorflow",
    "keras",
    "torch",
    "flask",
    "gunicorn",
    "uvicorn",
    "starlette",
    "fastapi",
    "httptools",
    "uvloop",
    "paho",
    "paho.mqtt",
    "paho.mqtt.client",
    "psycopg",
    "jsonschema",
    "prometheus_client",
    "psutil",
    "limits",
    "amqtt",
)


def run_without_extras(*args: str) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        f"for name in {EXTRAS_ONLY!r}: sys.modules[name] = None\n"
        "from ecolens.cli import main\n"
        f"sys.exit(main({list(args)!r}))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_without_extras() -> None:
    proc = run_without_extras("--help")
    assert proc.returncode == 0, proc.stderr
    for command in (
        "demo",
        "run",
        "serve",
        "classify",
        "train",
        "convert",
        "inspect",
        "aggregate",
        "report",
        "simulate",
        "benchmark",
    ):
        assert command in proc.stdout


def test_classify_without_extras(eval_dir: Path) -> None:
    image = next((eval_dir / "plastic").glob("*.jpg"))
    proc = run_without_extras("classify", str(image))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["source"] == str(image)


def test_command_needing_a_missing_extra_says_so() -> None:
    from ecolens.models import reference_h5

    proc = run_without_extras("convert", str(reference_h5()))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    # the package itself, with the requirement ecolens declares, and the extra that lists it
    assert "needs the Python package 'tensorflow'" in last and "pip install 'tensorflow>=" in last, last
    assert "(listed in ecolens[convert])" in last, last


def test_classify_imports_only_its_own_command(eval_dir: Path) -> None:
    """A cold start of `ecolens classify` imports neither the other commands' modules nor the
    config machinery (pydantic): what its start-up time is made of, kept so."""
    image = next((eval_dir / "plastic").glob("*.jpg"))
    code = (
        "import contextlib, io, sys\n"
        "from ecolens.cli import main\n"
        f"with contextlib.redirect_stdout(io.StringIO()): code = main(['classify', {str(image)!r}])\n"
        "loaded = [m for m in sys.modules if m.startswith(('ecolens.fleet', 'ecolens.convert', "
        "'ecolens.train', 'ecolens.commands.', 'ecolens.edge.api', 'ecolens.edge.daemon', "
        "'pydantic', 'ssl'))]\n"
        "print(code, sorted(loaded))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 ['ecolens.commands.classify']", proc.stdout


def serve_settings(*flags: str) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ecolens.cli", "serve", "--validate-config", *flags],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout[: proc.stdout.rindex("}") + 1]), proc.stderr


def test_serve_threads_flags_say_which_threads() -> None:
    settings, stderr = serve_settings("--request-threads", "3", "--model-threads", "2")
    assert settings["server"]["threads"] == 3 and settings["model"]["threads"] == 2
    assert "deprecated" not in stderr
    settings, stderr = serve_settings("--threads", "4")
    assert settings["server"]["threads"] == 4 and settings["model"]["threads"] is None
    assert [line for line in stderr.splitlines() if "deprecated" in line] == [
        "ecolens serve: --threads is deprecated, use --request-threads "
        "(or --model-threads for the interpreter)"
    ]

"""The shipped Prometheus alert rules (systemd/prometheus/): valid for promtool, and each alert
fires in its unit test (promtool test rules) where it should and stays quiet beside it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

RULES = Path(__file__).resolve().parents[1] / "systemd" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed: apt-get install prometheus")
    return subprocess.run([tool, *args], cwd=RULES, capture_output=True, text=True, timeout=120)


def test_promtool_checks_and_unit_tests_pass():
    checked = promtool("check", "rules", "ecolens-rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", "ecolens-rules.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_test_where_it_fires_and_one_where_it_does_not():
    rules = yaml.safe_load((RULES / "ecolens-rules.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    wanted = {
        "EcolensBinOffline", "EcolensResultsMissing", "EcolensCameraDown", "EcolensQueueGrowing",
        "EcolensIngestStalled", "EcolensBrokerDisconnected", "EcolensCanaryRolledBack",
    }  # fmt: skip
    assert wanted <= alerts, wanted - alerts
    cases = yaml.safe_load((RULES / "ecolens-rules.test.yml").read_text())["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    fires = {c["alertname"] for c in checks if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in checks if not c.get("exp_alerts")}
    assert fires == alerts, alerts - fires
    missing_quiet = alerts - quiet - {"EcolensWriterStopped"}  # 1 until minute 20: quiet before
    assert not missing_quiet, missing_quiet


def test_a_broken_rule_makes_the_test_fail(tmp_path):
    """The pytest above can fail: promtool reports an alert whose expected firing is wrong."""
    shutil.copy(RULES / "ecolens-rules.yml", tmp_path / "ecolens-rules.yml")
    text = (
        (RULES / "ecolens-rules.test.yml").read_text().replace("growing (130 waiting)", "growing (7 waiting)")
    )
    (tmp_path / "ecolens-rules.test.yml").write_text(text)
    tool = shutil.which("promtool") or pytest.skip("promtool not installed")
    command = [tool, "test", "rules", "ecolens-rules.test.yml"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "EcolensQueueGrowing" in done.stdout + done.stderr

"""The Prometheus configuration and alert rules, checked by Prometheus' own ``promtool``.

``promtool check`` catches PromQL that does not parse and rule files Prometheus would refuse at start-up;
``promtool test rules`` (infra/prometheus/tests/*.yml) proves each alert fires on the story it tells and stays
quiet on healthy neighbours. promtool comes with Debian's ``prometheus`` package, which infra/bootstrap.sh
installs; a machine without it runs the bootstrap's system step first and skips only if that fails too.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT

PROMETHEUS = REPO_ROOT / "infra" / "prometheus"
BOOTSTRAP = REPO_ROOT / "infra" / "bootstrap.sh"


def require_tool(name: str) -> str:
    """Path of a Prometheus binary (``promtool``, ``prometheus``), installing it through the bootstrap's system
    step when missing; skips only when neither is possible (no root, no network)."""
    found = shutil.which(name)
    if found is None:
        result = subprocess.run(
            ["bash", str(BOOTSTRAP)],
            env={**os.environ, "OFFSETSTREAM_BOOTSTRAP_SYSTEM_ONLY": "1"},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        found = shutil.which(name)
        if found is None:
            pytest.skip(
                f"{name} is not installed and infra/bootstrap.sh could not install it: {result.stderr[-500:]}"
            )
    return found


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    result = subprocess.run(
        [require_tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_alert_rules_pass_promtool_check() -> None:
    rule_files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert rule_files
    assert "SUCCESS" in _promtool("check", "rules", *rule_files)


def test_alert_rules_pass_their_unit_tests() -> None:
    test_files = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert test_files
    assert "SUCCESS" in _promtool("test", "rules", *test_files)


@pytest.mark.parametrize("file_name", ["prometheus.yml", "prometheus.local.yml"])
def test_prometheus_configuration_passes_promtool_check(file_name: str) -> None:
    assert "SUCCESS" in _promtool("check", "config", file_name)


def test_every_alert_has_a_unit_test() -> None:
    import yaml

    alerts = {
        rule["alert"]
        for path in (PROMETHEUS / "rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for path in (PROMETHEUS / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert not alerts - tested, f"alerts never shown firing in a promtool test: {sorted(alerts - tested)}"

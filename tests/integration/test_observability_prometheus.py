"""Every dashboard panel and every alert rule, asked of a real Prometheus scraping the real pipeline.

Story: start Debian's ``prometheus`` on a free loopback port with the committed local configuration (1 s scrape
and evaluation instead of 5 s, data under the test's tmp dir) and the committed rules; run the five services on
the sample 835 feed plus one unreadable file; once the pipeline has settled and Prometheus has scraped it, every
PromQL expression of every Grafana panel must evaluate without error and return at least one series.

Alert expressions are quiet on a healthy pipeline by design (``… > 0``). Their *signal* must still exist, or the
alert could never fire (a renamed metric, a missing label): each alert is written as a signal compared with
literal thresholds, so the probe is the expression with those literal comparisons removed. The full expression
is evaluated too, and it must not error.
"""

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from test_observability_rules import require_tool

from cli.local_infra import Stack, free_port, stop_pid, wait_for_port
from cli.runner import Pipeline
from shared.settings import REPO_ROOT, SERVICES

pytestmark = pytest.mark.integration

EXAMPLES = REPO_ROOT / "examples" / "835"
PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"
DASHBOARDS = REPO_ROOT / "infra" / "grafana" / "dashboards"

GRAFANA_VARIABLES = {
    "$__rate_interval": "15s",
    "$__interval": "15s",
    "$__range": "10m",
    "$service": ".*",
    "$policy": ".*",
}
"""What Grafana substitutes before sending a panel's query: "All" for the template variables, and windows that
hold several 1 s scrapes."""

LITERAL_COMPARISON = re.compile(r"\s*(==|!=|>=|<=|>|<)\s*(bool\s+)?-?\d+(\.\d+)?([eE][+-]?\d+)?(?![\w.])")


def alert_probe(expr: str) -> str:
    """The alert's signal: its expression without comparisons against literal thresholds."""
    return LITERAL_COMPARISON.sub("", expr)


def grafana_expr(expr: str) -> str:
    """A panel expression as Grafana would send it with the variables at their defaults."""
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def panel_queries() -> list[tuple[str, str]]:
    """(dashboard/panel/refId, expression) of every target of every panel."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                found.append((f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target["expr"]))
    return found


def alert_rules() -> list[tuple[str, str]]:
    """(alert name, expression) of every alert rule."""
    return [
        (rule["alert"], rule["expr"])
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def write_config(tmp: Path, prometheus_port: int, ports: dict[str, int]) -> Path:
    """The committed local configuration, sped up to 1 s, with absolute rule paths and this run's ports."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.local.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules" / "*.yml")]
    for job in config["scrape_configs"]:
        port = ports.get(job["job_name"], prometheus_port)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    assert {job["job_name"] for job in config["scrape_configs"]} >= set(SERVICES)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


class PromAPI:
    """The few calls of Prometheus' HTTP API the test needs."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}/api/v1"

    async def query(self, expr: str) -> tuple[str, list[dict[str, Any]], str]:
        """(status, result vector, error) of an instant query now."""
        async with self.session.get(f"{self.base}/query", params={"query": expr}) as response:
            body = await response.json()
        return body["status"], body.get("data", {}).get("result", []), body.get("error", "")

    async def value(self, expr: str) -> float:
        """The single value of a scalar-like query (0 when it returns nothing)."""
        _, result, _ = await self.query(expr)
        return float(result[0]["value"][1]) if result else 0.0

    async def get(self, what: str) -> Any:
        async with self.session.get(f"{self.base}/{what}") as response:
            return (await response.json())["data"]


async def wait_for(api: PromAPI, expr: str, want: float, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Poll until ``expr`` reaches ``want`` (scrapes and the lag monitor run on their own clocks)."""
    deadline = time.monotonic() + timeout
    while (got := await api.value(expr)) < want:
        assert time.monotonic() < deadline, f"{expr} = {got} after {timeout:.0f}s, wanted ≥ {want}"
        await asyncio.sleep(0.5)


def start_prometheus(tmp: Path, ports: dict[str, int]) -> tuple[int, int]:
    """Debian's prometheus on a free loopback port, data in the test's tmp dir; returns (PID, port)."""
    port = free_port()
    log_file = tmp / "prometheus.log"
    with log_file.open("ab") as log:
        proc = subprocess.Popen(
            [
                require_tool("prometheus"),
                f"--config.file={write_config(tmp, port, ports)}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for_port(port, 30.0, "Prometheus", log_file, proc.pid)
    except Exception:
        stop_pid(proc.pid)
        raise
    return proc.pid, port


async def check_figures(api: PromAPI) -> None:
    """The figures mean what they say for the sample feed plus one unreadable file."""
    assert await api.value("sum(remit_remittances_ingested_total)") == 4
    assert await api.value('sum(remit_files_total{outcome="rejected"})') == 1
    assert await api.value('sum(remit_dead_letters_total{service="intake"})') == 1
    assert await api.value('sum(remit_messages_processed_total{outcome="applied"})') > 0
    assert await api.value('remit_receivables_open_balance_dollars{policy="medicare"}') > 0
    assert await api.value("sum(max by (service, topic, partition) (remit_consumer_lag_messages))") == 0


async def unanswered_queries(api: PromAPI) -> list[str]:
    """Every panel query and every alert signal that errors or returns no series."""
    failures = []
    for where, expr in panel_queries():
        status, result, error = await api.query(grafana_expr(expr))
        if status != "success" or not result:
            failures.append(f"panel {where}: {status} {error or 'no series'}: {expr}")
    for name, expr in alert_rules():
        status, _, error = await api.query(expr)
        if status != "success":
            failures.append(f"alert {name}: {error}: {expr}")
        probe = alert_probe(expr)
        if probe == expr:
            failures.append(
                f"alert {name}: no literal threshold to strip, the signal cannot be probed: {expr}"
            )
        status, result, error = await api.query(probe)
        if status != "success" or not result:
            failures.append(f"alert {name} signal: {status} {error or 'no series'}: {probe}")
    return failures


async def test_every_panel_and_alert_query_answers(stack: Stack, tenant: str, tmp_path: Path) -> None:
    require_tool("prometheus")
    bad_file = tmp_path / "feed" / "unreadable.835"
    bad_file.parent.mkdir()
    bad_file.write_bytes(b"this is not a remittance advice\n")
    async with aiohttp.ClientSession() as session, Pipeline(stack) as pipeline:
        ports = {service: stack.web_ports[f"{service}-0"] for service in SERVICES}
        pid, port = await asyncio.to_thread(start_prometheus, tmp_path, ports)
        try:
            api = PromAPI(session, port)
            assert await pipeline.ingest([EXAMPLES], tenant) == 4
            assert await pipeline.ingest([bad_file], tenant) == 1
            await pipeline.settle(timeout=60)
            # Step: Prometheus sees all five stages, every lag monitor has reported, the ledger gauges are set.
            await wait_for(api, 'sum(up{job=~"intake|detection|matching|interest|notification"})', 5)
            await wait_for(api, "count(count by (service) (remit_consumer_lag_messages))", 5)
            await wait_for(api, "count(remit_receivables_open_balance_dollars)", 1)
            await asyncio.sleep(
                3
            )  # more scrapes after the last message, so every rate window holds two samples
            await check_figures(api)
            # Step: every panel query and every alert signal answers with series.
            failures = await unanswered_queries(api)
            assert not failures, "\n".join(failures)
            # Step: Prometheus itself loaded every rule and evaluates each without error.
            groups = (await api.get("rules"))["groups"]
            assert {rule["name"] for g in groups for rule in g["rules"]} == {n for n, _ in alert_rules()}
            assert all(rule["health"] != "err" for g in groups for rule in g["rules"]), groups
        finally:
            await asyncio.to_thread(stop_pid, pid, 20.0)

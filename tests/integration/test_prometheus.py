"""A real Prometheus scrapes a real worker under load; every dashboard and alert query is run.

Prometheus (Debian's ``prometheus`` package; ``.ci/run`` installs it) listens on loopback,
scrapes the worker every second and evaluates ``dashboards/alerts.yaml``. The test then runs
every panel and variable query of the generated dashboards, and every alert expression,
through the HTTP API, and checks ``promtool check metrics`` on the scraped text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dashboards import generate
from tests.integration.worker_harness import running_worker
from tests.waiting import eventually
from workfleet import Fail, Plugin, Run
from workfleet.workflow import ChildSpec, Workflow

ROOT = Path(__file__).resolve().parents[2]
SELECTOR = re.compile(r"\b((?:workfleet_[a-z_]+|up)(?:\{[^}]*\})?)(?=\s*[\[)]|\s*(?:==|>|<|\)|$))")
LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")

plugin = Plugin("prom")


@plugin.executor("prom.ok.v1")
async def ok(run: Run[Any]) -> None:
    await asyncio.sleep(0.01)


@plugin.executor("prom.fail.v1")
async def fail(run: Run[Any]) -> None:
    raise Fail("declined")


@plugin.workflow("prom.flow.v1")
async def flow(wf: Workflow[Any]) -> None:
    await wf.step("first", _nothing)
    await wf.gather(await wf.start_children([ChildSpec("prom.ok.v1", {})]))
    await wf.wait_signal("go")


async def _nothing() -> None:
    return None


@plugin.executor("idle.served.v1")
async def idle(run: Run[Any]) -> None:
    pass


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        body: bytes = response.read()
        return body.decode()


class Prom:
    def __init__(self, base: str) -> None:
        self.base = base

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        answer = _get(url)
        assert answer["status"] == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def label_values(self, label: str, match: str | None) -> list[str]:
        params = {"match[]": match} if match else {}
        url = f"{self.base}/api/v1/label/{label}/values?" + urllib.parse.urlencode(params)
        values: list[str] = _get(url)["data"]
        return values

    def alerts(self) -> dict[str, str]:
        return {
            a["labels"]["alertname"]: a["state"]
            for a in _get(f"{self.base}/api/v1/alerts")["data"]["alerts"]
        }


@contextlib.asynccontextmanager
async def prometheus(tmp: Path, worker_port: int) -> AsyncIterator[Prom]:
    port = _free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ROOT / "dashboards" / "alerts.yaml")],
        "scrape_configs": [
            {
                "job_name": "workfleet",
                "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}],
            },
            # nothing listens here: the worker-down alert must see it
            {
                "job_name": "workfleet-gone",
                "static_configs": [{"targets": [f"127.0.0.1:{_free_port()}"]}],
            },
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen(  # noqa: ASYNC220 - a long-lived server beside the test
        [
            _binary("prometheus"),
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:

        async def ready() -> bool:
            try:
                await asyncio.to_thread(_text, f"{base}/-/ready")
            except OSError:
                return proc.poll() is not None  # exited: stop waiting, fail below
            return True

        await eventually(ready, 30)
        assert proc.poll() is None, (tmp / "prometheus.log").read_text()
        yield Prom(base)
    finally:
        proc.terminate()
        proc.wait(10)


def _substituted(expr: str, dashboard: str) -> str:
    one_type = "prom.ok.v1" if dashboard == "workfleet-run-type.json" else ".*"
    return (
        expr.replace("$__rate_interval", "15s")
        .replace("$__range", "1m")
        .replace("$prefix", ".*")
        .replace("$type", one_type)
    )


def _dashboard_queries() -> Iterator[tuple[str, str, str]]:
    for name, text in generate.render().items():
        for title, expr in generate.expressions(text):
            yield name, title, _substituted(expr, name)


async def test_every_dashboard_and_alert_query_returns_data(
    pg_dsn: str, schema: str, run_sql: Any, tmp_path: Path
) -> None:
    promtool = _binary("promtool")
    # idle.other.v1 matches the idle.% loop but no executor: due for ten minutes, never claimed
    await run_sql(
        "INSERT INTO workflow_run (type, payload, run_at) "
        "VALUES ('idle.other.v1', '{}', now() - interval '10 minutes')"
    )
    async with running_worker(
        pg_dsn,
        schema,
        plugin,
        prefixes=["prom.%=4", "idle.%=1"],
        http_enabled=True,
        http_host="127.0.0.1",
        http_port=0,
        pending_metrics_interval=0.5,
    ) as running:
        http = running.worker.http
        assert http is not None
        async with prometheus(tmp_path, http.port) as prom:
            # target discovery reaches the scrape loop a few seconds after start-up: load the
            # worker only once it is scraped, so rate() sees the runs happen
            async def scraping() -> bool:
                return bool(await asyncio.to_thread(prom.query, 'up{job="workfleet"} == 1'))

            await eventually(scraping, 30)
            for _ in range(20):  # a small steady load over ~5 s, one run in ten fails
                await run_sql(
                    "INSERT INTO workflow_run (type, payload) "
                    "SELECT CASE WHEN g % 10 = 0 THEN 'prom.fail.v1' ELSE 'prom.ok.v1' END, '{}' "
                    "FROM generate_series(1, 10) g"
                )
                # a workflow whose signal waits in its mailbox before it is taken
                [(flow_id,)] = await run_sql(
                    "INSERT INTO workflow_run (type, payload) VALUES ('prom.flow.v1', '{}') "
                    "RETURNING id"
                )
                await run_sql(
                    "INSERT INTO workflow_signal (run_id, name) VALUES (%s, 'go')", [flow_id]
                )
                await asyncio.sleep(0.25)
            await running.observer.wait_for(lambda: running.observer.finished >= 200, 30)

            async def scraped_everything() -> bool:
                got = await asyncio.to_thread(
                    prom.query, 'workfleet_runs_finished_total{outcome="failed"} > 0'
                )
                return bool(got)

            await eventually(scraped_everything, 30)
            await asyncio.sleep(3)  # a few more scrapes, so every rate() window has two samples

            empty: list[str] = []
            sample: tuple[str, str, Any] | None = None
            for name, title, expr in _dashboard_queries():
                values = LABEL_VALUES.match(expr)
                if values:
                    found = await asyncio.to_thread(prom.label_values, values[2], values[1])
                    if not found:
                        empty.append(f"{name} / {title}: {expr}")
                    continue
                result = await asyncio.to_thread(prom.query, expr)
                if not result:
                    empty.append(f"{name} / {title}: {expr}")
                elif title == "Throughput by outcome":
                    sample = (title, expr, result)
            assert not empty, "queries without data:\n" + "\n".join(empty)

            rules = [
                r
                for g in yaml.safe_load((ROOT / "dashboards" / "alerts.yaml").read_text())["groups"]
                for r in g["rules"]
            ]
            for rule in rules:
                await asyncio.to_thread(prom.query, rule["expr"])  # parses and evaluates
                for selector in SELECTOR.findall(rule["expr"]):
                    series = await asyncio.to_thread(prom.query, f"count({selector})")
                    assert series, f"{rule['alert']}: no series for {selector}"

            wanted = {
                "WorkfleetRunsFailing",
                "WorkfleetOldestPendingTooOld",
                "WorkfleetPendingNotClaimed",
                "WorkfleetWorkerDown",
            }
            state: dict[str, str] = {}
            for _ in range(60):  # rules are evaluated every second
                state = await asyncio.to_thread(prom.alerts)
                if wanted <= set(state):
                    break
                await asyncio.sleep(0.5)
            assert wanted <= set(state), state
            assert "WorkfleetListenerDown" not in state
            assert "WorkfleetLeaseLossSpike" not in state

            metrics_text = await asyncio.to_thread(_text, f"http://127.0.0.1:{http.port}/metrics")

    lint = subprocess.run(  # noqa: ASYNC221 - the worker and Prometheus are stopped by now
        [promtool, "check", "metrics"],
        input=metrics_text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert sample is not None
    title, expr, result = sample
    print(f"\n{title}: {expr}")
    for series in result:
        print(f"  {series['metric']} = {series['value'][1]}")

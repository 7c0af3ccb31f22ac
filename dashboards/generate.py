"""Grafana dashboards as code: ``python dashboards/generate.py`` writes the committed JSON.

Two dashboards, built with grafana-foundation-sdk (a Grafana 11 build, pinned in
pyproject.toml):

- ``workfleet-overview.json``: the fleet, filtered by ``prefix`` and ``type``.
- ``workfleet-run-type.json``: one run type in detail.

The same files (and ``alerts.yaml``) are copied into the Helm chart's ``files/`` directory, from
which the chart renders its dashboard ConfigMaps and PrometheusRule. ``tests/unit/
test_dashboards.py`` fails when the committed files differ from what this script produces;
``tests/integration/test_prometheus.py`` evaluates every expression against a real Prometheus.

Conventions: per-replica series are aggregated with ``sum`` (counters, in-flight) or ``max``
(the pending gauges, which every replica of a prefix reports identically).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from grafana_foundation_sdk.builders import stat, timeseries
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableRefresh,
    VariableSort,
)

HERE = Path(__file__).resolve().parent
CHART_FILES = HERE.parent / "helm" / "workfleet" / "files"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'prefix=~"$prefix", type=~"$type"'
PREFIX_SEL = 'prefix=~"$prefix"'
ONE_TYPE = 'type="$type"'


def _query(expr: str, legend: str, ref: str) -> Dataquery:
    return Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def _series(
    title: str, unit: str, description: str, *queries: tuple[str, str], width: int = 12
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DS)
        .span(width)
        .height(8)
        .min(0)
    )
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def _stat(title: str, unit: str, description: str, expr: str, legend: str = "") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DS)
        .span(6)
        .height(4)
        .with_target(_query(expr, legend, "A"))
    )


def _quantiles(metric: str, selector: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le, {by}" if by else "le"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        (
            f"histogram_quantile({q}, sum by ({group}) "
            f"(rate({metric}_bucket{{{selector}}}[$__rate_interval])))",
            f"p{round(q * 100)}{suffix}",
        )
        for q in (0.5, 0.95, 0.99)
    ]


def _datasource() -> DatasourceVariable:
    return DatasourceVariable("datasource").label("Data source").type("prometheus")


def _label_variable(name: str, query: str, multi: bool) -> QueryVariable:
    variable = (
        QueryVariable(name)
        .label(name)
        .datasource(DS)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
    )
    if multi:
        variable = variable.include_all(True).all_value(".*")
    return variable


def overview() -> Dashboard:
    """The fleet at a glance: throughput, latency, backlog, capacity and health."""
    rate_finished = f"rate(workfleet_runs_finished_total{{{SEL}}}[$__rate_interval])"
    return (
        Dashboard("workfleet / overview")
        .uid("workfleet-overview")
        .description("Runs, latency, backlog and worker health of a workfleet fleet.")
        .tags(["workfleet"])
        .time("now-1h", "now")
        .refresh("30s")
        .with_variable(_datasource())
        .with_variable(
            _label_variable("prefix", "label_values(workfleet_concurrency, prefix)", True)
        )
        .with_variable(
            _label_variable(
                "type",
                'label_values(workfleet_runs_finished_total{prefix=~"$prefix"}, type)',
                True,
            )
        )
        .with_row(Row("Now"))
        .with_panel(
            _stat(
                "Runs finished / s",
                "ops",
                "Executions finished per second, every outcome.",
                f"sum({rate_finished})",
            )
        )
        .with_panel(
            _stat(
                "Pending (runnable)",
                "short",
                "Runs due and waiting for a worker, summed over the selected prefixes.",
                f"sum(max by (prefix) (workfleet_runs_pending{{{PREFIX_SEL}}}))",
            )
        )
        .with_panel(
            _stat(
                "Oldest pending",
                "s",
                "Age of the oldest runnable run across the selected prefixes.",
                f"max(workfleet_oldest_pending_age_seconds{{{PREFIX_SEL}}})",
            )
        )
        .with_panel(
            _stat(
                "Workers",
                "short",
                "Worker processes exporting metrics.",
                "count(workfleet_build_info)",
            )
        )
        .with_row(Row("Throughput and latency"))
        .with_panel(
            _series(
                "Throughput by outcome",
                "ops",
                "Executions finished per second by outcome (retried and timed_out are attempts "
                "that will run again).",
                (f"sum by (outcome) ({rate_finished})", "{{outcome}}"),
            )
        )
        .with_panel(
            _series(
                "Run duration",
                "s",
                "Executor wall time per execution.",
                *_quantiles("workfleet_run_duration_seconds", SEL),
            )
        )
        .with_panel(
            _series(
                "Queue wait",
                "s",
                "Time from run_at (due) to start: the latency a producer sees.",
                *_quantiles("workfleet_queue_wait_seconds", SEL),
            )
        )
        .with_panel(
            _series(
                "Claims and claim errors",
                "ops",
                "Runs claimed per second and failed claim statements per second.",
                (
                    f"sum by (prefix) (rate(workfleet_runs_claimed_total{{{PREFIX_SEL}}}"
                    "[$__rate_interval]))",
                    "claimed {{prefix}}",
                ),
                (
                    f"sum by (prefix) (rate(workfleet_claim_errors_total{{{PREFIX_SEL}}}"
                    "[$__rate_interval]))",
                    "errors {{prefix}}",
                ),
            )
        )
        .with_row(Row("Backlog and capacity"))
        .with_panel(
            _series(
                "Pending per prefix",
                "short",
                "Runnable runs (pending, due, not deleted) per prefix.",
                (f"max by (prefix) (workfleet_runs_pending{{{PREFIX_SEL}}})", "{{prefix}}"),
            )
        )
        .with_panel(
            _series(
                "Oldest pending per prefix",
                "s",
                "How long the oldest runnable run of each prefix has been due.",
                (
                    f"max by (prefix) (workfleet_oldest_pending_age_seconds{{{PREFIX_SEL}}})",
                    "{{prefix}}",
                ),
            )
        )
        .with_panel(
            _series(
                "In flight vs concurrency",
                "short",
                "Runs executing now against the slots the fleet offers, per prefix.",
                (
                    f"sum by (prefix) (workfleet_runs_in_flight{{{PREFIX_SEL}}})",
                    "in flight {{prefix}}",
                ),
                (f"sum by (prefix) (workfleet_concurrency{{{PREFIX_SEL}}})", "slots {{prefix}}"),
            )
        )
        .with_panel(
            _series(
                "Wake-ups by source",
                "ops",
                "Why lease loops woke: notify (NOTIFY), poll (fallback timer), slot, retry, "
                "schedule. Mostly poll means the listener is not doing its job.",
                (
                    f"sum by (source) (rate(workfleet_wakeups_total{{{PREFIX_SEL}}}"
                    "[$__rate_interval]))",
                    "{{source}}",
                ),
            )
        )
        .with_row(Row("Durable workflows"))
        .with_panel(
            _series(
                "Workflow steps by outcome",
                "ops",
                "Checkpoints written per second: steps succeeded, failed for good, or failed a "
                "try that will be retried.",
                (
                    'sum by (outcome) (rate(workfleet_workflow_steps_total{type=~"$type"}'
                    "[$__rate_interval]))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Waiting workflows by kind",
                "short",
                "Workflows holding no slot while they wait: a durable sleep, a signal, children, "
                "a step's retry backoff.",
                (f"max by (kind) (workfleet_workflows_waiting{{{PREFIX_SEL}}})", "{{kind}}"),
            )
        )
        .with_panel(
            _series(
                "Signal to resume",
                "s",
                "Time a signal spent in the mailbox before its workflow took it.",
                *_quantiles("workfleet_workflow_signal_wait_seconds", 'type=~"$type"'),
            )
        )
        .with_panel(
            _series(
                "Suspensions and fan-in size",
                "short",
                "Executions that gave their slot back to wait, by kind; children per fan-in.",
                (
                    'sum by (kind) (rate(workfleet_workflow_suspensions_total{type=~"$type"}'
                    "[$__rate_interval]))",
                    "suspended {{kind}}/s",
                ),
                *[
                    (expr, f"fan-in {legend}")
                    for expr, legend in _quantiles(
                        "workfleet_workflow_fan_in_size", 'type=~"$type"'
                    )[::2]
                ],
            )
        )
        .with_row(Row("Health"))
        .with_panel(
            _series(
                "Listener",
                "short",
                "Workers with a live LISTEN connection, workers that use one, and reconnects.",
                ("sum(workfleet_listener_connected)", "connected"),
                ("sum(workfleet_listener_enabled)", "expected"),
                (
                    "sum(increase(workfleet_listener_reconnects_total[$__rate_interval]))",
                    "reconnects",
                ),
            )
        )
        .with_panel(
            _series(
                "Lease losses",
                "short",
                "Executions whose lease was lost (re-run elsewhere; outcome not written).",
                (
                    f"sum by (prefix) (increase(workfleet_lease_losses_total{{{PREFIX_SEL}}}"
                    "[$__rate_interval]))",
                    "{{prefix}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Connection pool saturation",
                "percentunit",
                "Connections in use over the pool maximum, per worker; requests waiting for one.",
                (
                    '(max by (instance) (workfleet_pool_connections{stat="pool_size"})'
                    ' - max by (instance) (workfleet_pool_connections{stat="pool_available"}))'
                    ' / max by (instance) (workfleet_pool_connections{stat="pool_max"})',
                    "in use {{instance}}",
                ),
            )
        )
        .with_panel(
            _series(
                "Pool requests waiting",
                "short",
                "Callers waiting for a pooled connection; above 0 for long means the pool is "
                "too small (WORKFLEET_POOL_MAX_SIZE).",
                (
                    'max by (instance) (workfleet_pool_connections{stat="requests_waiting"})',
                    "{{instance}}",
                ),
            )
        )
    )


def run_type() -> Dashboard:
    """One run type: its outcomes, failure ratio, durations and waits."""
    finished = f"workfleet_runs_finished_total{{{ONE_TYPE}}}"
    return (
        Dashboard("workfleet / run type")
        .uid("workfleet-run-type")
        .description("One workfleet run type in detail.")
        .tags(["workfleet"])
        .time("now-6h", "now")
        .refresh("30s")
        .with_variable(_datasource())
        .with_variable(
            _label_variable("type", "label_values(workfleet_runs_finished_total, type)", False)
        )
        .with_panel(
            _stat(
                "Finished in range",
                "short",
                "Executions finished over the dashboard's time range.",
                f"sum(increase({finished}[$__range]))",
            )
        )
        .with_panel(
            _stat(
                "Failure ratio",
                "percentunit",
                "Terminal failures over all finished executions in the time range.",
                f'sum(increase(workfleet_runs_finished_total{{{ONE_TYPE}, outcome="failed"}}'
                f"[$__range])) / sum(increase({finished}[$__range]))",
            )
        )
        .with_panel(
            _stat(
                "p95 duration",
                "s",
                "95th percentile of executor wall time over the range.",
                "histogram_quantile(0.95, sum by (le) "
                f"(increase(workfleet_run_duration_seconds_bucket{{{ONE_TYPE}}}[$__range])))",
            )
        )
        .with_panel(
            _stat(
                "p95 queue wait",
                "s",
                "95th percentile of due-to-start time over the range.",
                "histogram_quantile(0.95, sum by (le) "
                f"(increase(workfleet_queue_wait_seconds_bucket{{{ONE_TYPE}}}[$__range])))",
            )
        )
        .with_panel(
            _series(
                "Outcomes",
                "ops",
                "Executions per second by outcome.",
                (f"sum by (outcome) (rate({finished}[$__rate_interval]))", "{{outcome}}"),
                width=24,
            )
        )
        .with_panel(
            _series(
                "Duration",
                "s",
                "Executor wall time per execution.",
                *_quantiles("workfleet_run_duration_seconds", ONE_TYPE),
            )
        )
        .with_panel(
            _series(
                "Queue wait",
                "s",
                "Time from run_at (due) to start.",
                *_quantiles("workfleet_queue_wait_seconds", ONE_TYPE),
            )
        )
    )


DASHBOARDS = {"workfleet-overview.json": overview, "workfleet-run-type.json": run_type}


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard, deterministic (sorted keys, newline)."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    out = {}
    for name, build in DASHBOARDS.items():
        model = build().build()
        # stable, unique panel ids (Grafana links and alerts refer to panels by id)
        for number, panel in enumerate(model.panels or [], start=1):
            panel.id_val = number
        out[name] = encoder.encode(model) + "\n"
    return out


def expressions(dashboard_json: str) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query in a rendered dashboard, variables included."""
    data = json.loads(dashboard_json)
    for panel in data.get("panels", []):
        for target in panel.get("targets", []) or []:
            if "expr" in target:
                yield panel.get("title", "?"), target["expr"]
    for variable in data.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query" and isinstance(query, str):
            yield f"variable {variable['name']}", query


def main(argv: list[str]) -> int:
    """Write the dashboards here and copy them (and alerts.yaml) into the Helm chart."""
    check = "--check" in argv
    wanted = {HERE / name: text for name, text in render().items()}
    for name, text in render().items():
        wanted[CHART_FILES / "dashboards" / name] = text
    wanted[CHART_FILES / "alerts.yaml"] = (HERE / "alerts.yaml").read_text()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    if check:
        for path in stale:
            print(f"out of date: {path.relative_to(HERE.parent)}", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

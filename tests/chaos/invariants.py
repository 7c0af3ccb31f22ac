"""The invariant checker the chaos scenarios share: what must hold, whatever went wrong.

``check`` reads ``workflow_run`` and ``workflow_event`` of one schema (database clock only) and
returns a :class:`Report`; ``Report.assert_ok`` fails the test naming every violation, and
``Report.figures`` is the dict the tests print (and ``docs/reliability.md`` quotes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

TERMINAL = ("succeeded", "failed", "cancelled")

_PER_RUN = """
SELECT r.id, r.status, r.type, r.attempt, r.lease_until, r.lease_until < now() AS expired,
       r.result, r.deleted_at IS NOT NULL AS deleted,
       count(e.id) FILTER (WHERE e.event_type IN ('succeeded', 'failed', 'cancelled'))
           AS terminal_events,
       count(e.id) FILTER (WHERE e.event_type = 'leased') AS leased_events,
       count(e.id) FILTER (WHERE e.event_type = 'started') AS started_events,
       count(e.id) FILTER (WHERE e.event_type = 'created') AS created_events,
       (array_agg(e.data->>'worker_id' ORDER BY e.id DESC)
           FILTER (WHERE e.event_type = 'leased'))[1] AS last_lessee
FROM workflow_run r
LEFT JOIN workflow_event e ON e.workflow_id = r.id
GROUP BY r.id
"""


@dataclass
class Report:
    """What one scenario left in the database, plus what the driver did to it."""

    runs: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    executions: int = 0
    kills: int = 0
    restarts: int = 0
    connection_kills: int = 0
    lost: int = 0
    duplicates_terminal: int = 0
    missing_terminal: int = 0
    unpaired_leases: int = 0
    stale_leases: int = 0
    succeeded_unexecuted: int = 0
    outcome_by_non_holder: int = 0
    violations: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def reexecutions(self) -> int:
        """Executions beyond one per run: the price of at-least-once under failures."""
        return max(self.executions - self.runs, 0)

    def figures(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "by_status": self.by_status,
            "executions": self.executions,
            "reexecutions": self.reexecutions,
            "kills": self.kills,
            "restarts": self.restarts,
            "connection_kills": self.connection_kills,
            "lost": self.lost,
            "duplicates_terminal": self.duplicates_terminal,
            "stale_leases": self.stale_leases,
            **self.extra,
        }

    def print(self, scenario: str) -> None:
        print(f"\nCHAOS {scenario}: {json.dumps(self.figures(), sort_keys=True)}")

    def assert_ok(self) -> None:
        assert not self.violations, "invariants violated:\n" + "\n".join(self.violations[:40])


async def check(
    conninfo: str,
    schema: str,
    *,
    expect_terminal: bool = True,
    stale_slack_seconds: float = 0.0,
    kills: int = 0,
    restarts: int = 0,
    connection_kills: int = 0,
) -> Report:
    """Check every run of ``schema``.

    - ``expect_terminal``: every run that was not deleted must be succeeded, failed or cancelled
      (the caller has let the fleet drain); otherwise non-terminal runs are only counted.
    - exactly one terminal event per terminal run, none for the others;
    - as many ``started`` as ``leased`` events (a claim writes both);
    - no run ``leased`` with a lease expired for more than ``stale_slack_seconds``;
    - a succeeded run was executed (a ``started`` event, a result naming a worker) and its
      result was written by the worker that held the last lease.
    """
    report = Report(kills=kills, restarts=restarts, connection_kills=connection_kills)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(_PER_RUN.encode())
        rows = await cur.fetchall()
        names = [d.name for d in cur.description or ()]
        cur = await conn.execute(
            "SELECT count(*) FROM workflow_run "
            "WHERE status = 'leased' AND lease_until < now() - make_interval(secs => %s)",
            [stale_slack_seconds],
        )
        stale = await cur.fetchone()
    report.stale_leases = int(stale[0]) if stale else 0
    if report.stale_leases:
        report.violations.append(f"{report.stale_leases} runs leased past an expired lease")
    for values in rows:
        row = dict(zip(names, values, strict=True))
        _check_run(report, row, expect_terminal)
    return report


def _check_run(report: Report, row: dict[str, Any], expect_terminal: bool) -> None:
    rid, status = row["id"], row["status"]
    report.runs += 1
    report.by_status[status] = report.by_status.get(status, 0) + 1
    report.executions += row["started_events"]
    terminal_events = row["terminal_events"]
    if status in TERMINAL:
        if terminal_events > 1:
            report.duplicates_terminal += 1
            report.violations.append(f"{rid}: {terminal_events} terminal events ({status})")
        elif terminal_events == 0:
            report.missing_terminal += 1
            report.violations.append(f"{rid}: {status} without a terminal event")
    else:
        if terminal_events:
            report.violations.append(f"{rid}: {status} but has {terminal_events} terminal events")
        if not row["deleted"]:
            report.lost += 1
            if expect_terminal:
                report.violations.append(f"{rid}: not finished ({status}, {row['type']})")
    if row["leased_events"] != row["started_events"]:
        report.unpaired_leases += 1
        report.violations.append(
            f"{rid}: {row['leased_events']} leased vs {row['started_events']} started events"
        )
    if status == "succeeded":
        result = row["result"]
        worker = result.get("worker") if isinstance(result, dict) else None
        if row["started_events"] == 0 or worker is None:
            report.succeeded_unexecuted += 1
            report.violations.append(f"{rid}: succeeded without an execution")
        elif worker != row["last_lessee"]:
            report.outcome_by_non_holder += 1
            report.violations.append(
                f"{rid}: result written by {worker}, last lease held by {row['last_lessee']}"
            )


async def terminal_events(conninfo: str, schema: str, run_id: Any) -> list[tuple[str, Any]]:
    """The terminal events of one run, oldest first: (event_type, data)."""
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(
            "SELECT event_type, data FROM workflow_event WHERE workflow_id = %s "
            "AND event_type IN ('succeeded', 'failed', 'cancelled') ORDER BY id",
            [run_id],
        )
        return [(r[0], r[1]) for r in await cur.fetchall()]

"""``workfleet runs``: filters, keyset paging, ``--json`` and ids ready to pipe."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.acceptance.cli import cli_env, run_cli

pytestmark = pytest.mark.acceptance

ROWS = [
    # (name, type, status, minutes ago, last_error, payload)
    ("b1", "billing.invoice.v1", "failed", 5, "TimeoutError: gateway timeout", {"customer": "C-1"}),
    ("b2", "billing.invoice.v1", "failed", 4, "ValueError: bad amount", {"customer": "C-2"}),
    ("b3", "billing.payment.v1", "failed", 3, "TimeoutError: bank timeout", {"customer": "C-1"}),
    ("b4", "billing.payment.v1", "failed", 240, "TimeoutError: old timeout", {"customer": "C-1"}),
    ("m1", "media.video.v1", "failed", 2, "TimeoutError: transcoder", {"customer": "C-1"}),
    ("s1", "billing.invoice.v1", "succeeded", 1, None, {"customer": "C-1"}),
    ("billing_lookalike", "billingX.v1", "failed", 1, "TimeoutError: x", {}),
]


@pytest.fixture
async def ids(run_sql: Any) -> dict[str, str]:
    out = {}
    for name, run_type, status, minutes, error, payload in ROWS:
        [(run_id,)] = await run_sql(
            "INSERT INTO workflow_run (type, payload, status, attempt, last_error, created_at) "
            "VALUES (%s, %s, %s, CASE WHEN %s = 'failed' THEN 3 ELSE 0 END, %s, "
            "now() - make_interval(mins => %s)) RETURNING id",
            [run_type, json.dumps(payload), status, status, error, minutes],
        )
        out[name] = str(run_id)
    return out


async def _ids(env: dict[str, str], *args: str) -> list[str]:
    code, out, err = await run_cli("runs", *args, "--ids", env=env)
    assert code == 0, err
    return out.split()


async def test_filters_select_exactly_the_runs_asked_for(
    pg_dsn: str, schema: str, ids: dict[str, str]
) -> None:
    env = cli_env(pg_dsn, schema)
    newest_first = ["b3", "b2", "b1", "b4"]
    assert await _ids(env, "--status", "failed", "--type", "billing.%") == [
        ids[n] for n in newest_first
    ]
    assert await _ids(env, "--status", "failed", "--type", "billing.%", "--since", "1h") == [
        ids[n] for n in ["b3", "b2", "b1"]
    ]
    assert await _ids(env, "--type", "billing.invoice.v1", "--error", "TIMEOUT") == [ids["b1"]]
    assert await _ids(env, "--status", "failed", "--until", "1h") == [ids["b4"]]
    assert await _ids(
        env, "--status", "failed", "--payload", '{"customer": "C-1"}', "--since", "1h"
    ) == [ids[n] for n in ["m1", "b3", "b1"]]
    assert set(await _ids(env, "--status", "succeeded", "--status", "failed")) == set(ids.values())


async def test_keyset_pages_cover_every_run_once(
    pg_dsn: str, schema: str, ids: dict[str, str]
) -> None:
    env = cli_env(pg_dsn, schema)
    every = await _ids(env, "--limit", "1000")
    assert await _ids(env, "--limit", "2", "--all") == every
    code, out, _ = await run_cli("runs", "--limit", "3", "--json", env=env)
    first = json.loads(out)
    assert code == 0 and len(first["runs"]) == 3 and first["next"]
    code, out, _ = await run_cli(
        "runs", "--limit", "1000", "--after", first["next"], "--json", env=env
    )
    rest = json.loads(out)
    assert [r["id"] for r in first["runs"] + rest["runs"]] == every
    assert rest["next"] is None
    assert all("payload" not in r for r in first["runs"])


async def test_the_table_fits_in_120_columns_without_colour_in_a_pipe(
    pg_dsn: str, schema: str, ids: dict[str, str]
) -> None:
    env = cli_env(pg_dsn, schema)
    code, out, err = await run_cli("runs", "--status", "failed", env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID",
        "TYPE",
        "STATUS",
        "TRIES",
        "CREATED",
        "(UTC)",
        "LAST",
        "ERROR",
    ]
    assert len(lines) == 1 + 6
    assert all(len(line) <= 120 for line in lines)
    assert "\x1b[" not in out
    assert "C-1" not in out, "no payloads in a listing"


async def test_a_shell_wildcard_is_refused_with_the_pattern_meant(pg_dsn: str, schema: str) -> None:
    code, _, err = await run_cli("runs", "--type", "billing.*", env=cli_env(pg_dsn, schema))
    assert code == 2
    assert re.search(r"--type: .*did you mean 'billing\.%'\?", err)


async def test_bulk_redrive_and_cancel_by_filter(
    pg_dsn: str, schema: str, ids: dict[str, str], run_sql: Any
) -> None:
    env = cli_env(pg_dsn, schema)
    flt = ["--type", "billing.%", "--error", "timeout", "--since", "1h"]
    code, out, err = await run_cli("runs", "redrive", *flt, "--dry-run", env=env)
    assert code == 0, err
    assert "redrive would change 2 run(s)" in out
    assert {ids["b1"], ids["b3"]} <= set(out.split())
    # no terminal to ask on: acting needs --yes, and nothing changes without it
    code, _, err = await run_cli("runs", "redrive", *flt, env=env)
    assert code == 2 and "--yes" in err
    code, _, err = await run_cli("runs", "cancel", "--yes", env=env)
    assert code == 2 and "needs a filter" in err
    code, out, err = await run_cli("runs", "redrive", *flt, "--yes", "--json", env=env)
    assert code == 0, err
    report = json.loads(out)
    assert sorted(report["done"]) == sorted([ids["b1"], ids["b3"]]) and not report["dry_run"]
    statuses = dict(
        await run_sql(
            "SELECT id::text, status FROM workflow_run WHERE id = ANY(%s::uuid[])",
            [[ids["b1"], ids["b3"], ids["b2"], ids["b4"]]],
        )
    )
    assert (statuses[ids["b1"]], statuses[ids["b3"]]) == ("pending", "pending")
    assert (statuses[ids["b2"]], statuses[ids["b4"]]) == ("failed", "failed")
    code, out, err = await run_cli(
        "runs", "cancel", "--type", "billing.invoice.v1", "--max", "5", "--yes", env=env
    )
    assert code == 0 and "cancelled 1 run(s)" in out, err  # b1, pending again: b2 is failed

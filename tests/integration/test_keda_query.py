"""The KEDA query of the chart, run against real PostgreSQL.

It must count exactly what the claim would take (pending, due, not deleted, type matched as the
worker matches it, type not disabled) and stay cheap on a table full of finished runs: an index,
never a sequential scan of workflow_run.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from tests.chart.rendering import ci_values, keda_query, render
from workfleet.db.queries import Queries
from workfleet.patterns import TypePattern

RUN_INDEXES_OK = {
    "workfleet_run_ready_idx",
    "workfleet_run_waiting_idx",
    "idx_workflow_run_claim",
    "idx_workflow_run_type_prefix",
}


def _query(schema: str, **overrides: Any) -> str:
    values = ci_values("billing")
    values["schema"] = schema
    keda = overrides.pop("keda", {})
    values.update(overrides)
    values["keda"].update(keda)
    return keda_query(render(values))


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


async def _seed(conn: psycopg.AsyncConnection[Any], schema: str) -> int:
    """60k finished runs, decoys of every kind and the eligible billing runs (returns how many)."""
    table = sql.Identifier(schema, "workflow_run")
    registry = sql.Identifier(schema, "workflow_registry")

    async def insert(type_: str, n: int, columns: str = "", values: str = "") -> None:
        await conn.execute(
            sql.SQL(
                "INSERT INTO {} (type, payload{}) "
                "SELECT %s, jsonb_build_object('n', g){} FROM generate_series(1, %s) g"
            ).format(table, sql.SQL(columns), sql.SQL(values)),
            (type_, n),
        )

    # the bulk of any real table: finished runs of every prefix
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (type, payload, status, created_at) "
            "SELECT (ARRAY['billing.invoice.v1', 'media.video.v1', 'notify.email.v1'])[g % 3 + 1],"
            " jsonb_build_object('n', g), (ARRAY['succeeded', 'failed', 'cancelled'])[g % 3 + 1],"
            " now() - interval '1 day' FROM generate_series(1, 60000) g"
        ).format(table)
    )
    # eligible: pending, due, not deleted, billing.* (two types, one with a past run_at)
    await insert("billing.invoice.v1", 25)
    await insert("billing.payment.v1", 12, ", run_at", ", now() - interval '1 hour'")
    eligible = 25 + 12
    # decoys
    await insert("media.video.v1", 30)  # another prefix
    await insert("billingx.invoice.v1", 5)  # shares the first letters, not the prefix
    await insert("billing.invoice.v1", 9, ", run_at", ", now() + interval '1 hour'")  # not due
    await insert("billing.invoice.v1", 4, ", deleted_at", ", now()")  # soft-deleted
    await insert(  # leased: running somewhere already
        "billing.invoice.v1",
        6,
        ", status, leased_by, lease_until",
        ", 'leased', 'w', now() + interval '1 minute'",
    )
    await insert("billing.refund.v1", 8)  # disabled in the registry below
    # disabled by a soft-deleted registry row, which disables nothing: eligible
    await insert("billing.retired.v1", 3)
    eligible += 3
    await conn.execute(
        sql.SQL(
            "INSERT INTO {} (workflow_name, runtime, is_enabled, deleted_at) VALUES "
            "('billing.refund.v1', 'python', false, NULL), "
            "('billing.invoice.v1', 'python', true, NULL), "
            "('billing.retired.v1', 'python', false, now())"
        ).format(registry)
    )
    await conn.execute(sql.SQL("ANALYZE {}").format(table))
    await conn.execute(sql.SQL("ANALYZE {}").format(registry))
    return eligible


async def test_keda_query_counts_what_the_claim_takes_using_an_index(
    pg_dsn: str, schema: str
) -> None:
    query = _query(schema)
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        eligible = await _seed(conn, schema)

        cur = await conn.execute(("EXPLAIN (FORMAT JSON) " + query).encode())
        row = await cur.fetchone()
        assert row is not None
        plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
        run_scans = [n for n in _nodes(plan[0]["Plan"]) if n.get("Relation Name") == "workflow_run"]
        assert run_scans, "the plan reads workflow_run"
        assert not [n for n in run_scans if n["Node Type"] == "Seq Scan"], run_scans
        for scan in run_scans:
            # an Index (Only) Scan names its index; a Bitmap Heap Scan's children do
            used = {n.get("Index Name") for n in _nodes(scan)} - {None}
            assert used & RUN_INDEXES_OK, f"{scan['Node Type']} of workflow_run used {used}"

        cur = await conn.execute(query.encode())
        assert await cur.fetchall() == [(eligible,)]

        # the worker's own claim, for the same prefix, takes exactly as many runs
        claim = Queries(schema)["claim"]
        cur = await conn.execute(
            claim,
            {
                "exact": [],
                "likes": [TypePattern.parse("billing.%").like()],
                "limit": 10_000,
                "worker_id": "keda-check",
                "lease": 30.0,
                "lifecycle": True,
            },
        )
        assert len(await cur.fetchall()) == eligible

        cur = await conn.execute(query.encode())
        assert await cur.fetchall() == [(0,)], "claimed runs are no longer runnable"


async def test_keda_query_stops_counting_at_max_replicas_times_target(
    pg_dsn: str, schema: str
) -> None:
    query = _query(schema, keda={"maxReplicaCount": 2, "targetRunsPerReplica": 5})
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        assert await _seed(conn, schema) > 10
        cur = await conn.execute(query.encode())
        assert await cur.fetchall() == [(10,)]


async def test_prefixes_with_quotes_and_like_metacharacters_count_literally(
    pg_dsn: str, schema: str
) -> None:
    table = sql.Identifier(schema, "workflow_run")
    cases = {
        # prefix: (types that match, decoys that a naive LIKE or a broken quote would count)
        "o'hara.%": (["o'hara.v1", "o'hara.x.v2"], ["ohara.v1", "o''hara.v1"]),
        "media_v2.%": (["media_v2.video"], ["mediaXv2.video", "media_v2"]),
        "50%off.%": (["50%off.sale"], ["50 and more off.sale", "50off.sale"]),
        "notify.email.v1": (["notify.email.v1"], ["notify.email.v10", "notify.email"]),
    }
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        for matching, decoys in cases.values():
            for type_ in matching + decoys:
                await conn.execute(
                    sql.SQL("INSERT INTO {} (type, payload) VALUES (%s, '{{}}')").format(table),
                    (type_,),
                )
        for prefix, (matching, decoys) in cases.items():
            pattern = TypePattern.parse(prefix)
            assert all(pattern.matches(t) for t in matching)
            assert not any(pattern.matches(t) for t in decoys)
            cur = await conn.execute(_query(schema, prefix=prefix).encode())
            assert await cur.fetchall() == [(len(matching),)], prefix


async def test_the_gauge_the_claim_and_keda_agree_on_what_is_runnable(
    pg_dsn: str, schema: str, pg_pool: Any
) -> None:
    """The runnable rule has one definition (the schema's `workfleet_queued` view): the pending
    gauge, the KEDA query and the claim count the same runs, and next-due finds the first
    future one of them, on the same decoys."""
    from workfleet.db.maintenance import PgMaintenance
    from workfleet.db.store import PgStore
    from workfleet.store import ClaimFilter

    prefix = TypePattern.parse("billing.%")
    async with await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True) as conn:
        eligible = await _seed(conn, schema)
        # decoys for next-due: a disabled type and a deleted run due sooner than the real one
        for type_, extra in (
            ("billing.refund.v1", ""),
            ("billing.invoice.v1", ", deleted_at = now()"),
        ):
            await conn.execute(
                sql.SQL(
                    "UPDATE {} SET run_at = now() + interval '10 minutes'" + extra + " "
                    "WHERE id = (SELECT id FROM {} WHERE type = %s AND status = 'pending' "
                    "AND deleted_at IS NULL AND run_at <= now() LIMIT 1)"
                ).format(
                    sql.Identifier(schema, "workflow_run"), sql.Identifier(schema, "workflow_run")
                ),
                (type_,),
            )
        eligible -= 1  # the deleted billing.invoice.v1 run was eligible until now
        cur = await conn.execute(_query(schema).encode())
        assert await cur.fetchall() == [(eligible,)]
    [gauge] = await PgMaintenance(pg_pool, schema).pending_by_prefix([prefix])
    assert (gauge.prefix, gauge.pending) == ("billing.%", eligible)
    store = PgStore(pg_pool, schema)
    filt = ClaimFilter((), (prefix.like(),))
    due = await store.next_due(filt)
    assert due is not None and 3000 < due <= 3600, "the hour-away run, not the 10-minute decoys"
    assert len(await store.claim("agree", filt, 10_000, 30)) == eligible

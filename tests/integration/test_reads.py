"""RunReads on PostgreSQL: keyset pages with every filter, cursors and capped counts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from workfleet.db.store import PgStore
from workfleet.models import Completion, NewRun, RunStatus
from workfleet.patterns import TypePattern
from workfleet.store import ClaimFilter, RunCursor, RunQuery

pytestmark = pytest.mark.postgres


async def _seed(store: PgStore, run_sql: Any) -> dict[str, uuid.UUID]:
    """Runs of three types, one failed with an error, payloads to search, spread over time."""
    ids: dict[str, uuid.UUID] = {}
    specs = [
        ("a1", "billing.invoice.v1", {"customer": "c1", "amount": 10}),
        ("a2", "billing.invoice.v1", {"customer": "c2", "amount": 20}),
        ("b1", "billing.refund.v1", {"customer": "c1", "tags": ["vip", "eu"]}),
        ("m1", "media.video.v1", {"customer": "c1"}),
        ("x1", "billing_x.v1", {"customer": "c3"}),  # '_' is literal in a pattern
    ]
    for name, run_type, payload in specs:
        [e] = await store.enqueue_many([NewRun(run_type, payload)])
        ids[name] = e.id
    # created_at one minute apart, in seed order, so pages have a known order
    for i, (name, _, _) in enumerate(specs):
        await run_sql(
            "UPDATE workflow_run SET created_at = now() - make_interval(mins => %s) WHERE id = %s",
            [10 - i, ids[name]],
        )
    [claimed] = await store.claim("w", ClaimFilter(("billing.refund.v1",), ()), 1, 30)
    error = "PaymentDeclined: card 4242 was declined (100% sure)"
    failed = Completion.failed(claimed.lease, error, {"error": error})
    assert await store.complete_many("w", [failed]) == {ids["b1"]}
    return ids


async def test_filters_select_what_they_say(pg_store: PgStore, run_sql: Any) -> None:
    ids = await _seed(pg_store, run_sql)

    async def names(query: RunQuery) -> list[str]:
        page = await pg_store.query_runs(query, limit=100)
        by_id = {v: k for k, v in ids.items()}
        return [by_id[r.id] for r in page.runs]

    assert await names(RunQuery()) == ["x1", "m1", "b1", "a2", "a1"], "newest first"
    assert await names(RunQuery(statuses=(RunStatus.FAILED,))) == ["b1"]
    billing = TypePattern.parse("billing.%")
    assert await names(RunQuery(types=(billing,))) == ["b1", "a2", "a1"]
    exact = TypePattern.parse("media.video.v1")
    assert await names(RunQuery(types=(exact, TypePattern.parse("billing_%")))) == ["x1", "m1"]
    assert await names(RunQuery(payload={"customer": "c1"})) == ["m1", "b1", "a1"]
    assert await names(RunQuery(payload={"tags": ["eu"]})) == ["b1"], "jsonb containment"
    assert await names(RunQuery(error="CARD 4242")) == ["b1"], "case-insensitive substring"
    assert await names(RunQuery(error="100%")) == ["b1"], "% in the text is literal"
    assert await names(RunQuery(error="10_%")) == []
    now = await pg_store.db_now()
    window = RunQuery(
        since=now - timedelta(minutes=9, seconds=30), until=now - timedelta(minutes=6, seconds=30)
    )
    assert await names(window) == ["m1", "b1", "a2"]
    start = (await pg_store.get(ids["a2"])).created_at  # type: ignore[union-attr]
    end = (await pg_store.get(ids["m1"])).created_at  # type: ignore[union-attr]
    bounds = await names(RunQuery(since=start, until=end))
    assert bounds == ["b1", "a2"], "since inclusive, until exclusive"
    both = RunQuery(types=(billing,), payload={"customer": "c1"}, statuses=(RunStatus.PENDING,))
    assert await names(both) == ["a1"], "filters combine with AND"
    await run_sql("UPDATE workflow_run SET deleted_at = now() WHERE id = %s", [ids["a1"]])
    assert "a1" not in await names(RunQuery())


async def test_keyset_pages_walk_everything_once(pg_store: PgStore, run_sql: Any) -> None:
    ids = await _seed(pg_store, run_sql)
    # two runs created at the same instant: the id breaks the tie, nothing is skipped or repeated
    await run_sql(
        "UPDATE workflow_run SET created_at = (SELECT created_at FROM workflow_run WHERE id = %s)"
        " WHERE id = %s",
        [ids["a1"], ids["a2"]],
    )
    seen: list[uuid.UUID] = []
    cursor: RunCursor | None = None
    pages = 0
    while True:
        page = await pg_store.query_runs(RunQuery(), limit=2, after=cursor)
        seen += [r.id for r in page.runs]
        pages += 1
        if page.next is None:
            break
        cursor = RunCursor.decode(page.next.encode())  # through its text form, as a CLI would
        assert cursor == page.next
    assert sorted(seen) == sorted(ids.values()) and len(seen) == len(set(seen))
    assert pages == 3


async def test_counts_stop_at_their_cap(pg_store: PgStore, run_sql: Any) -> None:
    await _seed(pg_store, run_sql)
    everything = await pg_store.count_runs(RunQuery(), cap=100)
    assert (everything.count, everything.at_least) == (5, False)
    capped = await pg_store.count_runs(RunQuery(), cap=3)
    assert (capped.count, capped.at_least) == (3, True)
    failed = await pg_store.count_runs(RunQuery(statuses=(RunStatus.FAILED,)))
    assert (failed.count, failed.at_least) == (1, False)


@pytest.mark.parametrize("token", ["", "nonsense", "2026-01-01T00:00:00_not-a-uuid", "x_y"])
def test_a_malformed_cursor_is_a_value_error(token: str) -> None:
    with pytest.raises(ValueError, match="not a page cursor"):
        RunCursor.decode(token)


async def test_page_size_is_bounded(pg_store: PgStore) -> None:
    for bad in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            await pg_store.query_runs(RunQuery(), limit=bad)

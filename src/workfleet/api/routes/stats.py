"""``/stats``: depth, oldest due age and recent outcomes per type prefix, from statements that
read at most ``WORKFLEET_API__COUNT_CAP`` index entries per count (never a ``count(*)`` of the
table)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from workfleet.api.auth import Reader
from workfleet.api.deps import API_PREFIX, Ops, Settings, patterns
from workfleet.api.problems import Problem
from workfleet.api.schemas import Stats, StatsReport

router = APIRouter(prefix=f"{API_PREFIX}/stats", tags=["stats"])


@router.get("", response_model=StatsReport, summary="Per-prefix queue stats")
async def stats(
    ops: Ops,
    settings: Settings,
    who: Reader,
    prefix: Annotated[
        list[str],
        Query(description="type patterns ('billing.%'); default: one per registered family"),
    ] = [],  # noqa: B006
) -> StatsReport:
    if len(prefix) > 50:
        raise Problem(422, "at most 50 prefixes in one request", field="query.prefix")
    found = await ops.stats(
        patterns(prefix, "query.prefix"),
        window_seconds=settings.stats_window_seconds,
        cap=settings.count_cap,
    )
    return StatsReport(
        window_seconds=settings.stats_window_seconds,
        cap=settings.count_cap,
        prefixes=[Stats.of(s) for s in found],
    )

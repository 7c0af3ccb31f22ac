"""``/bulk``: cancel or redrive many runs, chosen by ids or by a filter, bounded (at most
1000 per call, newest first, ``truncated`` when the filter selects more), reported id by id,
with a dry run that selects without changing anything."""

from __future__ import annotations

from fastapi import APIRouter

from workfleet.api.auth import Admin
from workfleet.api.deps import API_PREFIX, Ops, run_query
from workfleet.api.problems import Problem
from workfleet.api.schemas import BulkReport, BulkRequest, check_json
from workfleet.operations import BulkAction

router = APIRouter(prefix=f"{API_PREFIX}/bulk", tags=["bulk"])


async def _bulk(action: BulkAction, body: BulkRequest, ops: Ops) -> BulkReport:
    if (body.ids is None) == (body.filter is None):
        raise Problem(422, "give either ids or filter, not both and not neither", field="body")
    query = None
    if body.filter is not None:
        f = body.filter
        if f.payload is not None and (problem := check_json(f.payload, "body.filter.payload")):
            raise Problem(422, problem, field="body.filter.payload")
        query = run_query(
            types=f.types,
            prefixes=[],
            statuses=f.statuses,
            since=f.created_after,
            until=f.created_before,
            payload=f.payload,
            error=f.error,
            where="body.filter",
        )
    result = await ops.bulk(
        action, ids=body.ids, query=query, limit=body.limit, dry_run=body.dry_run
    )
    return BulkReport.of(result)


@router.post("/cancel", response_model=BulkReport, summary="Cancel pending or leased runs")
async def bulk_cancel(body: BulkRequest, ops: Ops, who: Admin) -> BulkReport:
    return await _bulk(BulkAction.CANCEL, body, ops)


@router.post("/redrive", response_model=BulkReport, summary="Redrive failed runs")
async def bulk_redrive(body: BulkRequest, ops: Ops, who: Admin) -> BulkReport:
    return await _bulk(BulkAction.REDRIVE, body, ops)

"""The API's routers, one module per resource; :data:`ROUTERS` is what the app mounts under
``/api/v1``, in order (a new resource is one more module and one more entry)."""

from __future__ import annotations

from fastapi import APIRouter

from workfleet.api.routes import bulk, runs, schedules, stats, steps

ROUTERS: tuple[APIRouter, ...] = (
    bulk.router,
    runs.router,
    steps.router,
    schedules.router,
    stats.router,
)

"""The console's pages (stub replaced below)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

router = APIRouter(prefix="/ui", include_in_schema=False)


def static() -> StaticFiles:
    return StaticFiles(directory=Path(__file__).parent / "static")

"""Basic worker: generate a thumbnail (``content.thumbnail.v1``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

import workfleet

plugin = workfleet.Plugin("content")


class ThumbnailPayload(BaseModel):
    content_id: str = Field(min_length=1)
    width: int = Field(gt=0, le=10_000)
    height: int = Field(gt=0, le=10_000)


@plugin.executor("content.thumbnail.v1", payload=ThumbnailPayload, timeout=60)
async def thumbnail(run: workfleet.Run[ThumbnailPayload]) -> dict[str, str]:
    """Generate an image thumbnail."""
    p = run.payload
    run.log.info(f"Generating thumbnail for content {p.content_id} ({p.width}x{p.height})")
    name = f"{p.content_id}_{p.width}x{p.height}.jpg"
    run.log.info(f"Thumbnail completed for content {p.content_id}")
    return {"status": "completed", "content_id": p.content_id, "thumbnail": name}

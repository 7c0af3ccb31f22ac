"""Video processor: a long run that heartbeats and checks for cancellation between operations."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, Field

import workfleet

plugin = workfleet.Plugin("media")

OPERATION_LINES = {
    "transcode": "Transcoding video {id}...",
    "thumbnail": "Generating thumbnails for {id}...",
    "upload": "Uploading video {id} to CDN...",
}


class VideoPayload(BaseModel):
    video_id: str = Field(min_length=1)
    operations: list[str] = Field(min_length=1, max_length=50)
    seconds_per_operation: float = Field(default=2.0, ge=0, le=600)


async def _work(run: workfleet.Run[VideoPayload], seconds: float) -> None:
    """Simulated work in small slices, so a cancellation is noticed promptly."""
    step = 0.1
    elapsed = 0.0
    while elapsed < seconds and not run.is_cancelled():
        await asyncio.sleep(min(step, seconds - elapsed))
        elapsed += step


@plugin.executor("media.video.v1", payload=VideoPayload, timeout=3600)
async def process_video(run: workfleet.Run[VideoPayload]) -> dict[str, object]:
    """Process a video through its operations, extending the lease between them."""
    p = run.payload
    run.log.info(f"Starting video processing for {p.video_id}")
    run.log.info(f"Operations: {p.operations}")
    total = len(p.operations)
    for index, operation in enumerate(p.operations, start=1):
        if run.is_cancelled():
            run.log.info(f"Video processing cancelled for {p.video_id} before {operation}")
            raise workfleet.Fail("cancelled")
        run.log.info(f"Executing operation {index}/{total}: {operation}")
        line = OPERATION_LINES.get(operation, "Running {op} on video {id}...")
        run.log.info(line.format(id=p.video_id, op=operation))
        await _work(run, p.seconds_per_operation)
        run.log.info("Extending lease by 30 seconds...")
        await run.heartbeat(30)
    if run.is_cancelled():
        run.log.info(f"Video processing cancelled for {p.video_id} after the last operation")
        raise workfleet.Fail("cancelled")
    run.log.info(f"Video processing completed for {p.video_id}")
    return {"video_id": p.video_id, "operations": p.operations, "status": "completed"}

"""Video processor: a long run that heartbeats and checks for cancellation between operations.

The run's lease is extended before each next operation (``run.heartbeat(30)``), so one slow
operation cannot outlive it; a cancellation (``UPDATE workflow_run SET status = 'cancelled'``)
sets ``run.cancelled``, which the simulated work waits on, so it stops at once. A worker's
shutdown sets it too (``run.worker_stopping`` tells the two apart): the run is then released
for another worker, not failed.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import BaseModel, Field

import workfleet

plugin = workfleet.Plugin("media")

LEASE_EXTENSION_SECONDS = 30

OPERATION_LINES = {
    "transcode": "Transcoding video {id}...",
    "thumbnail": "Generating thumbnails for {id}...",
    "upload": "Uploading video {id} to CDN...",
}
GENERIC_LINE = "Running {op} on video {id}..."


class VideoPayload(BaseModel):
    video_id: str = Field(min_length=1)
    operations: list[str] = Field(min_length=1, max_length=50)
    seconds_per_operation: float = Field(default=2.0, ge=0, le=600)


async def _work(run: workfleet.Run[VideoPayload], seconds: float) -> None:
    """Simulated work: ``seconds`` long, or until the run is cancelled, whichever comes first."""
    # waiting on the event (rather than sleeping) is what makes cancellation prompt
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(run.cancelled.wait(), timeout=seconds)


def _stop(run: workfleet.Run[VideoPayload], where: str) -> workfleet.Fail:
    if run.worker_stopping:
        # the worker is shutting down: the runtime releases the run (pending again, no attempt
        # used) whatever this execution raises, and another worker processes it from the start
        run.log.info(f"Worker stopping: video {run.payload.video_id} goes back to the queue")
        return workfleet.Fail("worker stopping")
    run.log.info(f"Video processing cancelled for {run.payload.video_id} {where}")
    # the runtime writes nothing for a cancelled run; Fail only ends this execution
    return workfleet.Fail("cancelled")


@plugin.executor("media.video.v1", payload=VideoPayload, timeout=3600)
async def process_video(run: workfleet.Run[VideoPayload]) -> dict[str, object]:
    """Process a video through its operations, extending the lease between them."""
    p = run.payload
    run.log.info(f"Starting video processing for {p.video_id}")
    run.log.info(f"Operations: {p.operations}")
    total = len(p.operations)
    for index, operation in enumerate(p.operations, start=1):
        if run.is_cancelled():
            raise _stop(run, f"before {operation}")
        run.log.info(f"Executing operation {index}/{total}: {operation}")
        line = OPERATION_LINES.get(operation, GENERIC_LINE)
        run.log.info(line.format(id=p.video_id, op=operation))
        await _work(run, p.seconds_per_operation)
        if index < total and not run.is_cancelled():
            run.log.info(f"Extending lease by {LEASE_EXTENSION_SECONDS} seconds...")
            await run.heartbeat(LEASE_EXTENSION_SECONDS)
    if run.is_cancelled():
        raise _stop(run, f"during {p.operations[-1]}")
    run.log.info(f"Video processing completed for {p.video_id}")
    return {
        "status": "completed",
        "video_id": p.video_id,
        "operations": p.operations,
        "attempt": run.attempt,
    }

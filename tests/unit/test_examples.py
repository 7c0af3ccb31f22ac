"""The example executors, called directly with a fake lease handle."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import structlog

from workfleet import Fail, Run, SyncRun
from workfleet_examples import billing, content, media, notify


class Handle:
    def __init__(self) -> None:
        self.extended: list[float] = []

    async def extend(self, seconds: float) -> bool:
        self.extended.append(seconds)
        return True


def make_run(cls: Any, run_type: str, payload: Any, attempt: int = 1, **kw: Any) -> Any:
    return cls(
        id=uuid.uuid4(),
        type=run_type,
        payload=payload,
        raw_payload=payload,
        attempt=attempt,
        max_attempts=3,
        handle=kw.pop("handle", Handle()),
        log=structlog.get_logger(),
        **kw,
    )


async def test_thumbnail() -> None:
    payload = content.ThumbnailPayload(content_id="img123", width=300, height=200)
    result = await content.thumbnail(make_run(Run, "content.thumbnail.v1", payload))
    assert result == {
        "status": "completed",
        "content_id": "img123",
        "thumbnail": "img123_300x200.jpg",
    }


async def test_payment_fails_first_then_succeeds() -> None:
    payload = billing.PaymentPayload(payment_id="PAY-001", amount=15000, method="credit_card")
    with pytest.raises(billing.PaymentGatewayTimeoutError):
        await billing.payment(make_run(Run, "billing.payment.v1", payload, attempt=1))
    result = await billing.payment(make_run(Run, "billing.payment.v1", payload, attempt=2))
    assert result["status"] == "captured"


async def test_video_heartbeats_between_operations() -> None:
    handle = Handle()
    payload = media.VideoPayload(
        video_id="v", operations=["transcode", "upload"], seconds_per_operation=0
    )
    result = await media.process_video(make_run(Run, "media.video.v1", payload, handle=handle))
    assert result["status"] == "completed"
    assert handle.extended == [30, 30]


async def test_video_stops_when_cancelled() -> None:
    payload = media.VideoPayload(video_id="v", operations=["transcode"], seconds_per_operation=0)
    run = make_run(Run, "media.video.v1", payload)
    run.cancelled.set()
    with pytest.raises(Fail, match="cancelled"):
        await media.process_video(run)


@pytest.mark.parametrize(
    ("run_type", "payload", "channel"),
    [
        ("notify.email.v1", {"to": "user@example.com", "subject": "Hi"}, "email"),
        ("notify.sms.v1", {"phone": "+1234567890", "message": "code"}, "sms"),
        ("notify.push.v1", {"user_id": "user123", "title": "New"}, "push"),
    ],
)
async def test_notify_channels(run_type: str, payload: Any, channel: str) -> None:
    run = make_run(SyncRun, run_type, payload, loop=asyncio.get_running_loop())
    result = await asyncio.to_thread(notify.notify, run)
    assert result["channel"] == channel


async def test_notify_rejects_unknown_channel_and_bad_payload() -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(Fail, match="unsupported"):
        notify.notify(make_run(SyncRun, "notify.fax.v1", {}, loop=loop))
    with pytest.raises(Fail, match="invalid email payload"):
        notify.notify(make_run(SyncRun, "notify.email.v1", {"subject": "x"}, loop=loop))

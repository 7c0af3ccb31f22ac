"""The example plugins (seed 002), called directly with a fake lease handle.

Each executor must log the lines of the examples guide's "Expected output", return its result,
and take the guide's failure paths: the payment's first-attempt gateway timeout, the video's
cancellation between operations, the notification worker's unknown channel.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import structlog
from pydantic import ValidationError
from structlog.testing import CapturingLogger, LogCapture

from tests.waiting import eventually
from workfleet import Fail, Run, SyncRun
from workfleet.models import ControlSignal
from workfleet.plugin import ExecutorSpec
from workfleet_examples import billing, content, media, notify


class Handle:
    """A lease handle that records extensions; ``held=False`` plays a lost lease."""

    def __init__(self, *, held: bool = True) -> None:
        self.held = held
        self.extended: list[float] = []

    async def extend(self, seconds: float) -> bool:
        self.extended.append(seconds)
        return self.held


class Harness:
    """A run for one executor call, with its log lines captured."""

    def __init__(
        self,
        cls: type[Run[Any]] | type[SyncRun[Any]],
        run_type: str,
        payload: Any,
        *,
        attempt: int = 1,
        handle: Handle | None = None,
        **extra: Any,
    ) -> None:
        self.capture = LogCapture()
        self.handle = handle or Handle()
        log = structlog.wrap_logger(
            CapturingLogger(),
            processors=[self.capture],
            wrapper_class=structlog.make_filtering_bound_logger(0),
        )
        self.run: Any = cls(
            id=uuid.uuid4(),
            type=run_type,
            payload=payload,
            raw_payload=payload,
            attempt=attempt,
            max_attempts=5,
            handle=self.handle,
            log=log,
            **extra,
        )

    @property
    def lines(self) -> list[str]:
        return [str(entry["event"]) for entry in self.capture.entries]


def _spec(plugin: Any, pattern: str) -> ExecutorSpec:
    [spec] = [s for s in plugin.executors if str(s.pattern) == pattern]
    return spec


# --- content ----------------------------------------------------------------------------------


async def test_thumbnail_logs_and_result() -> None:
    payload = content.ThumbnailPayload(content_id="img123", width=300, height=200)
    h = Harness(Run, "content.thumbnail.v1", payload)
    result = await content.thumbnail(h.run)
    assert result == {
        "status": "completed",
        "content_id": "img123",
        "thumbnail": "img123_300x200.jpg",
    }
    assert h.lines == [
        "Generating thumbnail for content img123 (300x200)",
        "Thumbnail completed for content img123",
    ]


def test_thumbnail_payload_is_validated() -> None:
    spec = _spec(content.plugin, "content.thumbnail.v1")
    assert spec.payload_model is content.ThumbnailPayload
    with pytest.raises(ValidationError):
        content.ThumbnailPayload.model_validate({"content_id": "img123", "width": "wide"})


# --- billing ----------------------------------------------------------------------------------


async def test_invoice_logs_and_result() -> None:
    payload = billing.InvoicePayload(invoice_id="INV-001", amount=150, customer_id="CUST-123")
    h = Harness(Run, "billing.invoice.v1", payload)
    result = await billing.invoice(h.run)
    assert result["invoice_id"] == "INV-001" and result["status"] == "generated"
    assert h.lines == [
        "Generating invoice INV-001 for customer CUST-123 (amount: $150.00)",
        "Invoice INV-001 generated successfully",
    ]


async def test_payment_fails_on_the_first_attempt_with_an_ordinary_exception() -> None:
    payload = billing.PaymentPayload(payment_id="PAY-001", amount=15000, method="credit_card")
    h = Harness(Run, "billing.payment.v1", payload, attempt=1)
    with pytest.raises(Exception, match="payment gateway timeout") as info:
        await billing.payment(h.run)
    # not a control signal: the worker's ordinary retry path (with the plugin's backoff) applies
    assert not isinstance(info.value, ControlSignal)
    assert h.lines == [
        "Processing payment PAY-001 (amount: $15000.00, method: credit_card)",
        "Error: payment gateway timeout (will retry)",
    ]


async def test_payment_succeeds_after_backoff() -> None:
    payload = billing.PaymentPayload(payment_id="PAY-001", amount=15000, method="credit_card")
    h = Harness(Run, "billing.payment.v1", payload, attempt=2)
    result = await billing.payment(h.run)
    assert result == {"payment_id": "PAY-001", "amount": 15000.0, "status": "captured"}
    assert h.lines == [
        "[After backoff] Processing payment PAY-001 (amount: $15000.00, method: credit_card)",
        "Payment PAY-001 processed successfully",
    ]


def test_billing_retries_within_seconds() -> None:
    for pattern in ("billing.invoice.v1", "billing.payment.v1"):
        spec = _spec(billing.plugin, pattern)
        assert spec.backoff is not None
        assert all(spec.backoff.delay(a) <= 5 for a in (1, 2, 3)), "a demo must not wait minutes"
        assert spec.max_attempts is not None and spec.max_attempts >= 2


# --- media ------------------------------------------------------------------------------------


def _video(**overrides: Any) -> media.VideoPayload:
    fields: dict[str, Any] = {
        "video_id": "vid123",
        "operations": ["transcode", "thumbnail", "upload"],
        "seconds_per_operation": 0,
    }
    return media.VideoPayload(**{**fields, **overrides})


async def test_video_logs_the_guides_output_and_extends_between_operations() -> None:
    h = Harness(Run, "media.video.v1", _video())
    result = await media.process_video(h.run)
    assert result["status"] == "completed" and result["video_id"] == "vid123"
    assert h.lines == [
        "Starting video processing for vid123",
        "Operations: ['transcode', 'thumbnail', 'upload']",
        "Executing operation 1/3: transcode",
        "Transcoding video vid123...",
        "Extending lease by 30 seconds...",
        "Executing operation 2/3: thumbnail",
        "Generating thumbnails for vid123...",
        "Extending lease by 30 seconds...",
        "Executing operation 3/3: upload",
        "Uploading video vid123 to CDN...",
        "Video processing completed for vid123",
    ]
    assert h.handle.extended == [30, 30]


async def test_video_unknown_operation_gets_a_generic_line() -> None:
    h = Harness(Run, "media.video.v1", _video(operations=["watermark"]))
    await media.process_video(h.run)
    assert "Running watermark on video vid123..." in h.lines


async def test_video_cancelled_before_it_starts() -> None:
    h = Harness(Run, "media.video.v1", _video())
    h.run.cancelled.set()
    with pytest.raises(Fail, match="cancelled"):
        await media.process_video(h.run)
    assert h.lines[-1] == "Video processing cancelled for vid123 before transcode"
    assert h.handle.extended == []


async def test_video_cancelled_while_an_operation_runs_stops_promptly() -> None:
    # ten minutes per operation: only the cancellation can end this run
    h = Harness(Run, "media.video.v1", _video(seconds_per_operation=600))
    task = asyncio.create_task(media.process_video(h.run))
    await eventually(lambda: "Transcoding video vid123..." in h.lines)
    h.run.cancelled.set()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done, "the video kept working after it was cancelled"
    with pytest.raises(Fail, match="cancelled"):
        task.result()
    assert h.lines[-1] == "Video processing cancelled for vid123 before thumbnail"
    assert "Extending lease by 30 seconds..." not in h.lines
    assert "Video processing completed for vid123" not in h.lines


async def test_video_cancelled_during_the_last_operation() -> None:
    h = Harness(Run, "media.video.v1", _video(operations=["upload"], seconds_per_operation=600))
    task = asyncio.create_task(media.process_video(h.run))
    await eventually(lambda: "Uploading video vid123 to CDN..." in h.lines)
    h.run.cancelled.set()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done
    with pytest.raises(Fail, match="cancelled"):
        task.result()
    assert h.lines[-1] == "Video processing cancelled for vid123 during upload"


async def test_video_stops_when_its_lease_is_lost() -> None:
    h = Harness(Run, "media.video.v1", _video(), handle=Handle(held=False))
    with pytest.raises(Fail, match="cancelled"):
        await media.process_video(h.run)
    assert h.handle.extended == [30]
    assert h.lines[-1] == "Video processing cancelled for vid123 before thumbnail"


def test_video_payload_rules() -> None:
    assert _spec(media.plugin, "media.video.v1").payload_model is media.VideoPayload
    assert media.VideoPayload(video_id="v", operations=["x"]).seconds_per_operation == 2.0
    with pytest.raises(ValidationError):
        media.VideoPayload(video_id="v", operations=[])


# --- notify -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_type", "payload", "lines"),
    [
        (
            "notify.email.v1",
            {"to": "user@example.com", "subject": "Welcome!", "body": "Thanks for signing up"},
            [
                "Processing notification: notify.email.v1",
                "Sending email to user@example.com: Welcome!",
                "Email sent successfully to user@example.com",
            ],
        ),
        (
            "notify.sms.v1",
            {"phone": "+1234567890", "message": "Your code is 123456"},
            [
                "Processing notification: notify.sms.v1",
                "Sending SMS to +1234567890",
                "SMS sent successfully to +1234567890",
            ],
        ),
        (
            "notify.push.v1",
            {"user_id": "user123", "title": "New Message", "body": "You have a new message"},
            [
                "Processing notification: notify.push.v1",
                "Sending push notification to user user123: New Message",
                "Push notification sent to user user123",
            ],
        ),
    ],
)
async def test_notify_channels(run_type: str, payload: Any, lines: list[str]) -> None:
    h = Harness(SyncRun, run_type, payload, loop=asyncio.get_running_loop())
    # a sync executor runs in a worker thread, as the runtime runs it
    result = await asyncio.to_thread(notify.notify, h.run)
    assert result["channel"] == run_type.split(".")[1]
    assert h.lines == lines


def test_notify_is_one_sync_pattern_executor() -> None:
    [spec] = notify.plugin.executors
    assert str(spec.pattern) == "notify.%"
    assert not spec.is_async
    assert spec.payload_model is None, "the payload is validated per channel"


@pytest.mark.parametrize("run_type", ["notify.fax.v1", "notify.v1"])
async def test_notify_rejects_unknown_channels(run_type: str) -> None:
    h = Harness(SyncRun, run_type, {}, loop=asyncio.get_running_loop())
    with pytest.raises(Fail, match=f"unsupported notification type '{run_type}'"):
        notify.notify(h.run)


async def test_notify_invalid_payload_names_fields_not_values() -> None:
    h = Harness(
        SyncRun, "notify.email.v1", {"subject": "s3cret-subject"}, loop=asyncio.get_running_loop()
    )
    with pytest.raises(Fail, match="invalid email payload: check to") as info:
        notify.notify(h.run)
    assert "s3cret" not in str(info.value)


async def test_notify_cancelled_sends_nothing() -> None:
    h = Harness(
        SyncRun,
        "notify.sms.v1",
        {"phone": "+1234567890", "message": "m"},
        loop=asyncio.get_running_loop(),
    )
    h.run.cancelled.set()
    with pytest.raises(Fail, match="cancelled"):
        notify.notify(h.run)
    assert not any("sent successfully" in line for line in h.lines)

"""The examples guide, end to end: its "Test it" SQL, verbatim, against `workfleet worker`.

A worker process runs with the example plugins; the statements are issued as a producer in any
language would issue them (plain SQL, search_path set to the schema); the monitoring queries of
the guide are run as written; then SIGTERM stops the worker with exit code 0.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.acceptance.cli import cli_env, run_cli, started
from tests.waiting import eventually

pytestmark = pytest.mark.acceptance

# The statements of the guide's "Test it" sections, as they reach PostgreSQL.
THUMBNAIL = """
INSERT INTO workflow_run (type, payload)
VALUES ('content.thumbnail.v1', '{"content_id": "img123", "width": 300, "height": 200}');
"""
INVOICE = """
INSERT INTO workflow_run (type, payload)
VALUES ('billing.invoice.v1', '{"invoice_id": "INV-001", "amount": 150.00, "customer_id": "CUST-123"}');
"""
PAYMENT = """
INSERT INTO workflow_run (type, payload)
VALUES ('billing.payment.v1', '{"payment_id": "PAY-001", "amount": 15000.00, "method": "credit_card"}');
"""
VIDEO = """
INSERT INTO workflow_run (type, payload)
VALUES ('media.video.v1', '{"video_id": "vid123", "operations": ["transcode", "thumbnail", "upload"]}');
"""
CANCEL = """
UPDATE workflow_run SET status = 'cancelled' WHERE id = '<workflow-id>';
"""
EMAIL = """
INSERT INTO workflow_run (type, payload)
VALUES ('notify.email.v1', '{"to": "user@example.com", "subject": "Welcome!", "body": "Thanks for signing up"}');
"""
SMS = """
INSERT INTO workflow_run (type, payload)
VALUES ('notify.sms.v1', '{"phone": "+1234567890", "message": "Your code is 123456"}');
"""
PUSH = """
INSERT INTO workflow_run (type, payload)
VALUES ('notify.push.v1', '{"user_id": "user123", "title": "New Message", "body": "You have a new message"}');
"""
CHECK_STATUS = """
SELECT id, type, status, attempt, created_at, updated_at
FROM workflow_run
ORDER BY created_at DESC
LIMIT 10;
"""
VIEW_EVENTS = """
SELECT e.event_type, e.created_at, e.data
FROM workflow_event e
WHERE e.workflow_id = '<workflow-id>'
ORDER BY e.created_at;
"""
FIND_FAILED = """
SELECT id, type, last_error, attempt, max_attempts
FROM workflow_run
WHERE status = 'failed';
"""
HEARTBEATS = """
SELECT workflow_id, event_type, created_at
FROM workflow_event
WHERE event_type = 'heartbeat'
ORDER BY created_at DESC;
"""
EXPIRED = """
SELECT id, type, status, lease_until, leased_by
FROM workflow_run
WHERE status = 'leased' AND lease_until < NOW();
"""


async def _psql(dsn: str, schema: str, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = await conn.execute(statement.encode(), params)
        return await cur.fetchall() if cur.description else []


async def _run_of(dsn: str, schema: str, run_type: str) -> tuple[Any, ...]:
    rows = await _psql(
        dsn,
        schema,
        "SELECT id, status, attempt, last_error, result FROM workflow_run WHERE type = %s",
        [run_type],
    )
    assert len(rows) == 1, rows
    return rows[0]


async def _status_is(dsn: str, schema: str, run_type: str, status: str) -> bool:
    return (await _run_of(dsn, schema, run_type))[1] == status


async def test_examples_guide(pg_dsn: str, schema: str) -> None:
    env = cli_env(pg_dsn, schema, WORKFLEET_POLL_INTERVAL="2", WORKFLEET_CANCEL_GRACE="1")
    async with started(
        "worker",
        "--prefix",
        "content.%",
        "--prefix",
        "billing.%=4",
        "--prefix",
        "media.%",
        "--prefix",
        "notify.%",
        env=env,
    ) as worker:
        await worker.wait_for_line("worker started")

        # Basic worker: thumbnail
        await _psql(pg_dsn, schema, THUMBNAIL)
        await worker.wait_for_line("Generating thumbnail for content img123 (300x200)")
        await worker.wait_for_line("Thumbnail completed for content img123")

        # Billing worker: invoice, then a payment that fails once and succeeds after backoff
        await _psql(pg_dsn, schema, INVOICE)
        await _psql(pg_dsn, schema, PAYMENT)
        await worker.wait_for_line(
            "Generating invoice INV-001 for customer CUST-123 (amount: $150.00)"
        )
        await worker.wait_for_line("Invoice INV-001 generated successfully")
        await worker.wait_for_line(
            "Processing payment PAY-001 (amount: $15000.00, method: credit_card)"
        )
        await worker.wait_for_line("Error: payment gateway timeout (will retry)")
        await worker.wait_for_line("[After backoff] Processing payment PAY-001", timeout=60)
        await worker.wait_for_line("Payment PAY-001 processed successfully")

        # Notification worker: three types, one pattern executor
        for statement in (EMAIL, SMS, PUSH):
            await _psql(pg_dsn, schema, statement)
        for line in (
            "Processing notification: notify.email.v1",
            "Sending email to user@example.com: Welcome!",
            "Email sent successfully to user@example.com",
            "Sending SMS to +1234567890",
            "SMS sent successfully to +1234567890",
            "Sending push notification to user user123: New Message",
            "Push notification sent to user user123",
        ):
            await worker.wait_for_line(line)

        # Video processor: heartbeats between operations, cancelled while processing
        await _psql(pg_dsn, schema, VIDEO)
        await worker.wait_for_line("Starting video processing for vid123")
        await worker.wait_for_line("Extending lease by 30 seconds...")
        video_id = (await _run_of(pg_dsn, schema, "media.video.v1"))[0]
        await _psql(pg_dsn, schema, CANCEL.replace("<workflow-id>", str(video_id)))
        await worker.wait_for_line("Video processing cancelled for vid123")

        for run_type in (
            "content.thumbnail.v1",
            "billing.invoice.v1",
            "billing.payment.v1",
            "notify.email.v1",
            "notify.sms.v1",
            "notify.push.v1",
        ):
            await eventually(lambda t=run_type: _status_is(pg_dsn, schema, t, "succeeded"), 30)
        payment = await _run_of(pg_dsn, schema, "billing.payment.v1")
        assert payment[2] == 1, "the payment used one failed attempt before succeeding"
        assert "payment gateway timeout" in payment[3]
        video = await _run_of(pg_dsn, schema, "media.video.v1")
        assert video[1] == "cancelled", "a cancelled run stays cancelled"
        assert "Video processing completed for vid123" not in worker.output

        # The guide's monitoring queries, as written
        recent = await _psql(pg_dsn, schema, CHECK_STATUS)
        assert {r[1] for r in recent} >= {"content.thumbnail.v1", "media.video.v1"}
        events = await _psql(pg_dsn, schema, VIEW_EVENTS.replace("<workflow-id>", str(video_id)))
        kinds = [e[0] for e in events]
        assert kinds[:3] == ["created", "leased", "started"]
        assert "heartbeat" in kinds and kinds[-1] == "cancelled"
        assert await _psql(pg_dsn, schema, FIND_FAILED) == []
        beats = await _psql(pg_dsn, schema, HEARTBEATS)
        assert {b[0] for b in beats} == {video_id}
        assert await _psql(pg_dsn, schema, EXPIRED) == []

        # the CLI sees the same picture
        code, out, _ = await run_cli("status", env=env)
        assert code == 0
        assert "billing.payment.v1" in out and "live workers: 1" in out
        code, out, _ = await run_cli("inspect", str(video_id), env=env)
        assert code == 0 and "cancelled" in out and "heartbeat" in out

        assert await worker.terminate() == 0
    assert "worker stopped" in worker.output


async def test_sigterm_drains_running_video(pg_dsn: str, schema: str) -> None:
    """SIGTERM while a run is in flight: the run finishes, the worker exits 0."""
    env = cli_env(pg_dsn, schema, WORKFLEET_DRAIN_TIMEOUT="30")
    async with started("worker", "--prefix", "media.%", env=env) as worker:
        await worker.wait_for_line("worker started")
        await _psql(
            pg_dsn,
            schema,
            "INSERT INTO workflow_run (type, payload) VALUES "
            '(\'media.video.v1\', \'{"video_id": "v2", "operations": ["transcode"],'
            ' "seconds_per_operation": 1.0}\')',
        )
        await worker.wait_for_line("Executing operation 1/1: transcode")
        code = await asyncio.wait_for(worker.terminate(), 60)
    assert code == 0
    assert (await _run_of(pg_dsn, schema, "media.video.v1"))[1] == "succeeded"
    assert "draining runs in flight" in worker.output

"""The hot path's hand-written codecs agree with the standard ones on every input shape."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workfleet.db.queue import claimed_runs, completions_json, decode_payload
from workfleet.models import Completion, Lease

_ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _as_dicts(completions: list[Completion]) -> list[dict[str, Any]]:
    """What the batch document meant before it was written by hand: json.dumps of dicts."""
    doc = json.dumps(
        [
            {
                "id": str(c.lease.run_id),
                "token": c.lease.token,
                "status": c.status.value,
                "event": c.event.value,
                "consume": c.consume_attempt,
                "delay": c.delay,
                "result": c.result_json,
                "error": c.error,
                "data": c.event_data,
                "wake": c.wake,
            }
            for c in completions
        ],
        default=str,
    )
    decoded: list[dict[str, Any]] = json.loads(doc)
    return decoded


def _batch() -> list[Completion]:
    keyed = Lease(_ID, 7, str(_ID))
    plain = Lease(uuid.uuid4(), 0)  # no text form: the renderer formats the id itself
    odd = 'quote " backslash \\ newline \n tab \t NUL \x00 é ✓ \U0001f600 \ud800'
    return [
        Completion.succeeded(keyed, "null", {"attempt": 1, "duration_seconds": 0.000123}),
        Completion.succeeded(plain, json.dumps({"k": [1, 2.5, None, odd]}), {"attempt": 3}),
        Completion.retry(keyed, 12.5, odd, {"error": odd, "nested": {"a": [odd]}}),
        Completion.failed(plain, "boom", {"when": datetime(2026, 1, 2, tzinfo=UTC)}),
        Completion.snoozed(keyed, 0.0, {"reason": "snoozed", "snooze_seconds": 1e300}),
        Completion.released(plain, 'worker "w"'),
    ]


def test_the_outcome_batch_means_what_json_dumps_of_dicts_meant() -> None:
    batch = _batch()
    assert json.loads(completions_json(batch)) == _as_dicts(batch)
    assert completions_json([]) == "[]"


def test_the_outcome_batch_is_ascii_and_strict_json() -> None:
    text = completions_json(_batch())
    assert text.isascii()
    json.loads(text, parse_constant=pytest.fail)  # no NaN or Infinity


@pytest.mark.parametrize(
    "text",
    ['{"seq": 1}', "[]", '"s"', "1.5", "null", " {}", "{} ", '{"a": "\\u00e9"}'],
)
def test_payload_decoding_matches_json_loads(text: str) -> None:
    assert decode_payload(text) == (json.loads(text), None)


@pytest.mark.parametrize("text", ["{", "{} x", "[" * 100_000 + "]" * 100_000, "NaNx"])
def test_a_payload_that_cannot_be_decoded_names_the_error(text: str) -> None:
    value, error = decode_payload(text)
    assert value is None
    assert error is not None and error.startswith("payload cannot be decoded: ")


def test_claimed_rows_keep_exact_microseconds() -> None:
    """The claim sends its times as microseconds since the epoch: read back exactly, including
    the clamped ends that stand for a hand-written infinity."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    times = [
        datetime(2026, 12, 1, 18, 39, 22, 878368, tzinfo=UTC),
        datetime(2, 1, 1, tzinfo=UTC),
        datetime(9998, 12, 31, tzinfo=UTC),
    ]
    us = [(t - epoch) // timedelta(microseconds=1) for t in times]
    [run] = claimed_runs([(_ID, "t.a.v1", '{"n": 1}', 0, 3, 100, us[0], us[1], us[2], 4)])
    assert (run.run_at, run.created_at, run.claimed_at) == tuple(times)
    assert (run.payload, run.payload_error, run.key) == ({"n": 1}, None, str(_ID))
    assert run.lease == Lease(_ID, 4) and run.lease.key == str(_ID)

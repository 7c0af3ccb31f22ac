"""The two claims of ``runs.sql`` differ only in what they select."""

from __future__ import annotations

from workfleet.db.queries import HOT_PATH, raw_queries


def _lease_part(name: str) -> str:
    text = raw_queries()[name]
    return text[text.index("claimed AS (") :]


def test_both_claims_lease_and_audit_alike() -> None:
    """``claim_ready`` is ``claim`` without the branch for due waits: both include one
    ``claim_lease`` (the token, the events, the asynchronous commit, the clamped timestamps),
    so a change to it reaches both."""
    shared = _lease_part("claim_lease")
    assert _lease_part("claim_ready") == _lease_part("claim") == shared
    assert "-- include:" not in raw_queries()["claim"] + raw_queries()["claim_ready"]
    assert "woken" not in raw_queries()["claim_ready"]
    assert {"claim", "claim_ready"} <= HOT_PATH


def test_both_claims_select_the_same_ready_rows() -> None:
    """The ready-row selection (order, lock, skip) is one ``ready_runs`` block: ``claim``'s
    ``ready`` and ``claim_ready``'s ``candidates`` are both exactly it."""
    ready = raw_queries()["ready_runs"]
    assert "FOR UPDATE OF q SKIP LOCKED" in ready and "ORDER BY q.priority" in ready
    assert f"WITH ready AS (\n{ready}\n), woken AS (" in raw_queries()["claim"]
    assert f"WITH candidates AS (\n{ready}\n),\n" in raw_queries()["claim_ready"]

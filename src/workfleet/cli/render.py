"""Plain-text rendering of runs, events and the status summary for the terminal.

Payloads and results are shown only by ``inspect`` (the operator asked for that run); ``status``
never prints payload contents.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from workfleet.models import Event, RunRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def render_status(summary: Any, schema: str) -> str:
    out = [f"schema {schema}", ""]
    counts: dict[str, dict[str, int]] = {}
    for c in summary.counts:
        counts.setdefault(c.type, {})[str(c.status)] = c.count
    oldest = (
        dict(summary.oldest_pending.items())
        if hasattr(summary.oldest_pending, "items")
        else {o.type: o.age_seconds for o in summary.oldest_pending}
    )
    statuses = ["pending", "leased", "succeeded", "failed", "cancelled"]
    rows = [
        [t, *[counts[t].get(s, 0) for s in statuses], age(oldest.get(t))] for t in sorted(counts)
    ]
    out.append(
        table(["TYPE", *[s.upper() for s in statuses], "OLDEST PENDING"], rows)
        if rows
        else "no runs"
    )
    out.append("")
    workers = summary.workers
    out.append(f"live workers: {len(workers)}")
    if workers:
        out.append(
            table(
                ["WORKER", "HOST", "PID", "VERSION", "PATTERNS", "LAST SEEN"],
                [
                    [
                        w.worker_id,
                        w.hostname,
                        w.pid,
                        w.version,
                        ",".join(w.patterns),
                        w.last_seen_at.isoformat(timespec="seconds"),
                    ]
                    for w in workers
                ],
            )
        )
    within = age(summary.other_workers_within)
    others = summary.other_workers
    if others:
        out.append("")
        out.append(f"other workers (not workfleet; ran runs in the last {within}): {len(others)}")
        out.append(
            table(
                ["WORKER", "TYPES", "RUNS", "LAST SEEN"],
                [
                    [
                        o.worker_id,
                        ",".join(o.types),
                        o.runs,
                        o.last_seen_at.isoformat(timespec="seconds"),
                    ]
                    for o in others
                ],
            )
        )
    if summary.unserved_types:
        out.append("")
        out.append(
            f"pending types no live worker can execute (nor ran in the last {within}): "
            + ", ".join(sorted(summary.unserved_types))
        )
    return "\n".join(out)


def render_run(record: RunRecord, events: Sequence[Event]) -> str:
    fields = [
        ("id", record.id),
        ("type", record.type),
        ("status", record.status),
        ("attempt", f"{record.attempt} of {record.max_attempts}"),
        ("priority", record.priority),
        ("run_at", record.run_at.isoformat()),
        ("idempotency_key", record.idempotency_key),
        ("leased_by", record.leased_by),
        ("lease_until", record.lease_until.isoformat() if record.lease_until else None),
        ("last_error", record.last_error),
        ("created_at", record.created_at.isoformat()),
        ("updated_at", record.updated_at.isoformat()),
        ("payload", json.dumps(record.payload, sort_keys=True)),
        ("result", None if record.result is None else json.dumps(record.result, sort_keys=True)),
    ]
    width = max(len(k) for k, _ in fields)
    lines = [f"{k.ljust(width)}  {'-' if v is None else v}" for k, v in fields]
    lines += ["", "events:"]
    for e in events:
        data = (
            ""
            if e.data is None
            else json.dumps(
                {k: v for k, v in e.data.items() if k != "traceback"}
                if isinstance(e.data, dict)
                else e.data,
                sort_keys=True,
            )
        )
        lines.append(
            f"  {e.created_at.isoformat(timespec='milliseconds')}  "
            f"{str(e.event_type).ljust(9)}  {data}"
        )
    return "\n".join(lines)

"""What the CLI prints: plain-text tables of runs, events, schedules and the status summary,
and JSON documents for ``--json``.

Payloads and results are shown only by ``inspect`` (the operator asked for that run); ``status``
and ``list`` never print payload contents.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from workfleet.history import Attempt, attempt_count, attempts, shown_data
from workfleet.models import Event, RunRecord, RunStatus
from workfleet.patterns import TypePattern
from workfleet.store import RunPage, ScheduleRecord, StatusSummary


def json_default(value: Any) -> Any:
    """JSON for what the standard encoder does not know: times, ids, records."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_json(value: Any) -> None:
    print(json.dumps(value, default=json_default, indent=2, sort_keys=True))


def emit(as_json: bool, document: Any, text: str) -> None:
    """Print ``document`` as JSON (``--json``) or ``text`` for people."""
    if as_json:
        print_json(document)
    else:
        print(text)


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


def filter_status(summary: StatusSummary, patterns: Sequence[TypePattern]) -> StatusSummary:
    """The summary's rows about types one of ``patterns`` matches (no patterns: all of it)."""
    if not patterns:
        return summary

    def keep(run_type: str) -> bool:
        return any(p.matches(run_type) for p in patterns)

    return dataclasses.replace(
        summary,
        counts=[c for c in summary.counts if keep(c.type)],
        oldest_pending=[o for o in summary.oldest_pending if keep(o.type)],
        unserved_types=[t for t in summary.unserved_types if keep(t)],
    )


def render_status(summary: StatusSummary, schema: str, *, colour: bool = False) -> str:
    """The status summary as tables that fit in :data:`WIDTH` columns; with ``colour``, failed
    counts and unserved types stand out."""
    out = [f"schema {schema}", ""]
    counts: dict[str, dict[str, int]] = {}
    for c in summary.counts:
        counts.setdefault(c.type, {})[str(c.status)] = c.count
    oldest = {o.type: o.age_seconds for o in summary.oldest_pending}
    statuses = ["pending", "leased", "succeeded", "failed", "cancelled"]
    rows = [
        [_clip(t, 40), *[counts[t].get(s, 0) for s in statuses], age(oldest.get(t))]
        for t in sorted(counts)
    ]
    text = (
        table(["TYPE", *[s.upper() for s in statuses], "OLDEST PENDING"], rows)
        if rows
        else "no runs"
    )
    if colour and rows:
        text = _paint_column(text, "FAILED", "failed", lambda cell: cell.strip() not in ("", "0"))
    out.append(text)
    out.append("")
    workers = summary.workers
    out.append(f"live workers: {len(workers)}")
    if workers:
        out.append(
            table(
                ["WORKER", "HOST", "PID", "VERSION", "PATTERNS", "SEEN (UTC)"],
                [
                    [
                        _clip(w.worker_id, 30),
                        _clip(w.hostname, 20),
                        w.pid,
                        _clip(w.version, 10),
                        _clip(",".join(w.patterns), 24),
                        w.last_seen_at.astimezone(UTC).strftime("%H:%M:%S"),
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
                ["WORKER", "TYPES", "RUNS", "SEEN (UTC)"],
                [
                    [
                        _clip(o.worker_id, 40),
                        _clip(",".join(o.types), 50),
                        o.runs,
                        o.last_seen_at.astimezone(UTC).strftime("%H:%M:%S"),
                    ]
                    for o in others
                ],
            )
        )
    if summary.unserved_types:
        out.append("")
        line = f"pending types no live worker can execute (nor ran in the last {within}): "
        out.append(paint(line + ", ".join(sorted(summary.unserved_types)), "failed", colour))
    return "\n".join(out)


def _paint_column(text: str, header: str, status: str, when: Callable[[str], bool]) -> str:
    """``text`` (a :func:`table`) with the cells of column ``header`` painted as ``status``
    where ``when(cell)``."""
    lines = text.splitlines()
    start = lines[0].index(header)
    nxt = lines[0].find(" ", start + len(header))
    end = len(lines[0]) if nxt < 0 else nxt
    out = [lines[0]]
    for line in lines[1:]:
        cell = line[start:end]
        out.append(
            line[:start] + paint(cell, status, when(cell)) + line[end:] if when(cell) else line
        )
    return "\n".join(out)


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str | None, width: int) -> str | None:
    if text is None:
        return None
    line = text.splitlines()[0] if text.strip() else text
    return line if len(line) <= width else line[: width - 1] + "…"


def render_attempts(rows: Sequence[Attempt], width: int = 118) -> str:
    """The attempts table of ``inspect``; errors clipped so a line fits in ``width`` columns."""
    cells = [
        [a.number, _when(a.started_at), _when(a.ended_at), a.outcome, _clip(a.worker_id, 24)]
        for a in rows
    ]
    headers = ["#", "STARTED", "ENDED", "OUTCOME", "WORKER"]
    used = sum(
        max(len(h), *(len("-" if r[i] is None else str(r[i])) for r in cells)) + 2
        for i, h in enumerate(headers)
    )
    return table(
        [*headers, "ERROR"],
        [[*r, _clip(a.error, max(20, width - used))] for r, a in zip(cells, rows, strict=True)],
    )


def render_run(record: RunRecord, events: Sequence[Event]) -> str:
    used = attempt_count(record, events)
    executions = attempts(events, record.status)
    fields = [
        ("id", record.id),
        ("type", record.type),
        ("status", record.status),
        ("attempts", f"{used.used} of {used.maximum}"),
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
    if executions:
        lines += ["", "attempts:", *("  " + x for x in render_attempts(executions).splitlines())]
    last = _last_traceback(events)
    if last is not None:
        lines += ["", f"last traceback (attempt {last[0]}):"]
        lines += ["  " + x for x in last[1].rstrip().splitlines()]
    lines += ["", "events:"]
    for e in events:
        data = "" if e.data is None else json.dumps(shown_data(e), sort_keys=True)
        lines.append(
            f"  {e.created_at.isoformat(timespec='milliseconds')}  "
            f"{str(e.event_type).ljust(9)}  {data}"
        )
    return "\n".join(lines)


def _last_traceback(events: Sequence[Event]) -> tuple[Any, str] | None:
    for e in reversed(events):
        if isinstance(e.data, dict) and isinstance(e.data.get("traceback"), str):
            return e.data.get("attempt", "?"), e.data["traceback"]
    return None


def run_json(record: RunRecord, events: Sequence[Event]) -> dict[str, Any]:
    """``inspect --json``: the row, its attempts as people count them, and its events."""
    used = attempt_count(record, events)
    return {
        "run": record,
        "attempts_used": used.used,
        "max_attempts": used.maximum,
        "attempts": attempts(events, record.status),
        "events": events,
    }


# the run fields `list` shows: never the payload or the result
LISTED = ("id", "type", "status", "attempt", "max_attempts", "priority", "run_at", "created_at")


def runs_json(page: RunPage) -> dict[str, Any]:
    """``list --json``: the page's runs without payloads or results, and the next page's token."""
    return {
        "runs": [
            {**{k: getattr(r, k) for k in LISTED}, "last_error": r.last_error} for r in page.runs
        ],
        "next": page.next.encode() if page.next else None,
    }


def render_runs(page: RunPage) -> str:
    return render_run_rows(page.runs)


WIDTH = 120  # what a listing fits in without wrapping
CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear the screen

_COLOURS = {
    "succeeded": "32",  # green
    "failed": "31",  # red
    "leased": "36",  # cyan
    "pending": "33",  # yellow
    "cancelled": "2",  # dim
}


def use_colour(stream: Any) -> bool:
    """Colour for a terminal, unless ``NO_COLOR`` is set (https://no-color.org)."""
    return bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


def paint(text: str, status: str, colour: bool) -> str:
    code = _COLOURS.get(status)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def render_run_rows(runs: Sequence[RunRecord], *, colour: bool = False) -> str:
    """Runs as a table that fits in :data:`WIDTH` columns (the type and error are clipped),
    no payloads; the status coloured when ``colour``."""
    if not runs:
        return "no runs"
    type_width = min(28, max(4, *(len(r.type) for r in runs)))
    # ID 36, STATUS 9, TRIES 5, CREATED 16 and the gaps between six columns
    error_width = max(12, WIDTH - (36 + type_width + 9 + 5 + 16 + 5 * 2))
    rows = [
        [
            r.id,
            _clip(r.type, type_width),
            str(r.status),
            # used, as inspect counts them (the maximum that applies may be the executor's)
            r.attempt + (1 if r.status in (RunStatus.LEASED, RunStatus.SUCCEEDED) else 0),
            r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            _clip(r.last_error, error_width),
        ]
        for r in runs
    ]
    text = table(["ID", "TYPE", "STATUS", "TRIES", "CREATED (UTC)", "LAST ERROR"], rows)
    if not colour:
        return text
    lines = text.splitlines()
    statuses = [str(r.status) for r in runs]
    width = max(len("STATUS"), *(len(s) for s in statuses))
    start = lines[0].index("STATUS")
    out = [lines[0]]
    for line, status in zip(lines[1:], statuses, strict=True):
        cell = line[start : start + width]
        out.append(line[:start] + paint(cell, status, True) + line[start + width :])
    return "\n".join(out)


def note(problem: str | None, enabled: bool) -> str | None:
    """The NOTE of a schedule workfleet cannot fire (another tool may have written it)."""
    if problem is None:
        return None
    return f"invalid here: {problem}" + (" - disabled when due" if enabled else "")


def render_schedules(records: Sequence[ScheduleRecord]) -> str:
    if not records:
        return "no schedules"
    return table(
        ["ID", "TYPE", "CRON", "TZ", "ENABLED", "NEXT RUN", "LAST RUN", "NOTE"],
        [
            [
                r.id,
                r.type,
                r.schedule,
                r.timezone,
                "yes" if r.enabled else "no",
                r.next_run_at.isoformat(timespec="seconds"),
                r.last_run_at.isoformat(timespec="seconds") if r.last_run_at else None,
                note(r.problem, r.enabled),
            ]
            for r in records
        ],
    )

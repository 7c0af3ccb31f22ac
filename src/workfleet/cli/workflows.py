"""Durable workflows on the command line: ``signal``, ``resume``, and the workflow part of
``inspect`` (the step timeline, waits, mailbox and children)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any

from workfleet.cli.connect import connected
from workfleet.cli.options import fail, settings_from
from workfleet.cli.render import emit, table
from workfleet.errors import ConfigError
from workfleet.operations import Reason, WorkflowDetail, parse_id

CHILDREN_SHOWN = 10


async def signal(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_id(args.run_id)
    try:
        payload = None if args.payload is None else json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"payload is not valid JSON: {exc.msg} at position {exc.pos}") from None
    async with connected(settings) as db:
        result = await db.ops.signal(run_id, args.name, payload, args.key)
    if not result.done:
        if result.reason is Reason.NOT_FOUND:
            return fail("failed", f"no run {run_id}")
        return fail("failed", f"run {run_id} is {result.status}: no workflow will take a signal")
    note = " (a signal with this key was sent before: nothing new)" if result.duplicate else ""
    emit(args.json, result, f"signal {args.name!r} sent to {run_id} as #{result.signal_id}{note}")
    return 0


async def resume(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    run_id = parse_id(args.run_id)
    async with connected(settings) as db:
        result = await db.ops.resume(run_id)
    if not result.done:
        if result.reason is Reason.NOT_FOUND:
            return fail("failed", f"no run {run_id}")
        return fail("failed", f"run {run_id} is {result.status}: only a failed run can resume")
    emit(
        args.json,
        result,
        f"resumed {run_id}: pending; its failed steps run again, finished ones are kept",
    )
    return 0


def add_commands(add: Any) -> None:
    """Register the workflow commands on the CLI's ``add`` helper."""
    p = add("signal", signal, "send a signal to a workflow run (its mailbox keeps it)")
    p.add_argument("run_id")
    p.add_argument("name", help="the signal's name, as the workflow waits for it")
    p.add_argument("--payload", help="the signal's JSON payload")
    p.add_argument("--key", help="idempotency key: the same key is sent once")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("resume", resume, "continue a failed workflow from its failed step")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def render_workflow(detail: WorkflowDetail) -> str:
    """The step timeline, what the run waits for, its mailbox and its children."""
    lines = ["", "steps:"]
    rows = []
    for s in detail.steps:
        took = None
        if s.started_at is not None and s.finished_at is not None:
            took = f"{(s.finished_at - s.started_at).total_seconds():.3f}s"
        note = s.error
        if s.wake_at is not None and not s.status.is_final:
            note = f"until {s.wake_at.isoformat(timespec='seconds')}" + (
                f"; {s.error}" if s.error else ""
            )
        rows.append([s.key, s.kind, s.status, s.attempts, took, note])
    lines.append(table(["KEY", "KIND", "STATUS", "TRIES", "TOOK", "NOTE"], rows) if rows else "  -")
    if detail.waits:
        waited = ", ".join(f"{w.kind} {w.target}" for w in detail.waits[:CHILDREN_SHOWN])
        more = len(detail.waits) - CHILDREN_SHOWN
        lines += ["", f"waiting for: {waited}" + (f" (+{more} more)" if more > 0 else "")]
    if detail.signals:
        waiting = sum(1 for g in detail.signals if g["consumed_at"] is None)
        lines += ["", f"signals: {len(detail.signals)} ({waiting} not taken yet)"]
        for g in detail.signals[:CHILDREN_SHOWN]:
            taken = f"taken by {g['consumed_by']}" if g["consumed_at"] else "in the mailbox"
            lines.append(f"  #{g['id']}  {g['name']}  {taken}")
    if detail.children:
        counts = Counter(str(c.status) for c in detail.children)
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        lines += ["", f"children: {len(detail.children)} ({summary})"]
        for c in detail.children[:CHILDREN_SHOWN]:
            lines.append(f"  {c.id}  {c.type}  {c.status}" + (f"  {c.error}" if c.error else ""))
    return "\n".join(lines)


def workflow_json(detail: WorkflowDetail) -> dict[str, Any]:
    return {
        "steps": detail.steps,
        "waits": detail.waits,
        "signals": detail.signals,
        "children": detail.children,
    }

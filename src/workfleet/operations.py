"""What a user can ask of workfleet, in one façade over the ports: the CLI and the REST API use
it.

:class:`Operations` speaks only through the ports of :mod:`workfleet.store` (never SQL, never a
driver: an import-linter contract keeps it so), and answers in types rather than words:

- a refusal is a result, not an exception: :class:`ActionResult` and :class:`ScheduleResult`
  say whether the action was done and, when not, the :class:`Reason` (with the run's current
  status), which each front end turns into its own message and code (the CLI's exit status, the
  API's 404 or 409);
- input that cannot be acted on raises :class:`~workfleet.errors.InvalidRequestError` (the API's
  400) saying what to change, before anything is written;
- a missing run or schedule reads as None.

Database failures propagate as :class:`~workfleet.errors.StoreError`.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workfleet.checkpoints import ChildState, StepRecord, WaitRecord, WorkflowAdmin, signal_json
from workfleet.errors import InvalidRequestError, StoreDataError
from workfleet.models import Enqueued, Event, NewRun, RunRecord, RunStatus, check_new_run
from workfleet.patterns import TypePattern
from workfleet.schedule import validate_cron, validate_timezone
from workfleet.store import (
    MAX_BULK,
    MAX_PAGE,
    CappedCount,
    PrefixStats,
    RunBatches,
    RunCursor,
    RunOperations,
    RunPage,
    RunQuery,
    RunQueue,
    RunReads,
    ScheduleAdmin,
    ScheduleRecord,
    StatsReads,
    StatusReads,
    StatusSummary,
)

# The statuses a run can be cancelled or redriven from (the cancel and redrive statements').
CANCELLABLE = (RunStatus.PENDING, RunStatus.LEASED)
REDRIVABLE = (RunStatus.FAILED,)


class Reason(enum.StrEnum):
    """Why an action was not done."""

    NOT_FOUND = "not_found"  # no such run or schedule (a deleted schedule is gone)
    NOT_CANCELLABLE = "not_cancellable"  # finished already: the result's status says how
    NOT_REDRIVABLE = "not_redrivable"  # not failed: the result's status says what it is
    DELETED = "deleted"  # the run is soft-deleted: it never runs again
    CANNOT_FIRE = "cannot_fire"  # the schedule's cron or timezone is not one workfleet fires
    NOT_RESUMABLE = "not_resumable"  # only a failed run can be resumed
    FINISHED = "finished"  # the run is final: a signal would never be taken


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action on a run did. ``status`` is the run's status afterwards (None when there
    is no such run); ``reason`` is set exactly when ``done`` is False."""

    run_id: uuid.UUID
    done: bool
    reason: Reason | None = None
    status: RunStatus | None = None


@dataclass(frozen=True, slots=True)
class ScheduleResult:
    """What an action on a schedule did; ``reason`` is set exactly when ``done`` is False."""

    schedule_id: uuid.UUID
    done: bool
    reason: Reason | None = None
    problem: str | None = None  # with CANNOT_FIRE: what is wrong with the schedule


@dataclass(frozen=True, slots=True)
class WorkflowDetail:
    """A workflow run's checkpoints (oldest first), what it waits for, its mailbox and its
    children (each list capped at ``DETAIL_LIMIT``)."""

    steps: list[StepRecord]
    waits: list[WaitRecord]
    signals: list[dict[str, Any]]
    children: list[ChildState]

    @property
    def empty(self) -> bool:
        return not (self.steps or self.waits or self.signals or self.children)


DETAIL_LIMIT = 200


@dataclass(frozen=True, slots=True)
class RunDetail:
    """One run and its audit trail, oldest event first; for a workflow, its checkpoints."""

    run: RunRecord
    events: list[Event]
    workflow: WorkflowDetail | None = None


@dataclass(frozen=True, slots=True)
class SignalResult:
    """What sending a signal did: ``signal_id`` of the mailbox row (the earlier one when
    ``duplicate``: its idempotency key was seen); ``reason`` when not ``done``."""

    run_id: uuid.UUID
    done: bool
    reason: Reason | None = None
    status: RunStatus | None = None
    signal_id: int | None = None
    duplicate: bool = False


class BulkAction(enum.StrEnum):
    CANCEL = "cancel"
    REDRIVE = "redrive"


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action selected and did, newest run first.

    ``selected`` are the runs the ids or the filter chose that the action applies to (by
    status); ``done`` those it changed (in a dry run, none); ``skipped`` the given ids it did
    not select (missing, deleted, or in a status the action does not apply to) or, acting,
    found changed since; ``truncated``: the filter selects more than ``limit`` runs, and only
    the newest ``limit`` were taken (run it again for the rest).
    """

    action: BulkAction
    dry_run: bool
    selected: list[uuid.UUID]
    done: list[uuid.UUID]
    skipped: list[uuid.UUID]
    truncated: bool
    limit: int


def parse_id(text: str, what: str = "run") -> uuid.UUID:
    """A run or schedule id from user input; :class:`InvalidRequestError` when it is no UUID."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise InvalidRequestError(f"{text!r} is not a {what} id (a UUID)") from None


class Operations:
    """Enqueue, read and act on runs; the status summary; manage schedules."""

    def __init__(
        self,
        *,
        queue: RunQueue,
        reads: RunReads,
        runs: RunOperations,
        status: StatusReads,
        schedules: ScheduleAdmin,
        workflows: WorkflowAdmin | None = None,
        batches: RunBatches | None = None,
        stats: StatsReads | None = None,
    ) -> None:
        self.workflows = workflows
        self.queue = queue
        self.batches = batches
        self.stats_reads = stats
        self.reads = reads
        self.runs = runs
        self.status_reads = status
        self.schedules = schedules

    # --- runs -------------------------------------------------------------------------------

    async def enqueue(self, run: NewRun) -> Enqueued:
        """Record the intent to run; a duplicate idempotency key returns the existing run."""
        [result] = await self.enqueue_many([run])
        return result

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        """Enqueue in one statement, results in input order; every run is checked first, so an
        invalid one (:class:`InvalidRequestError`) sends none."""
        try:
            checked = [check_new_run(r) for r in runs]
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        return await self.queue.enqueue_many(checked) if checked else []

    async def get(self, run_id: uuid.UUID) -> RunRecord | None:
        return await self.reads.get(run_id)

    async def inspect(self, run_id: uuid.UUID) -> RunDetail | None:
        """The run and its events (and, for a workflow, its checkpoints, waits, mailbox and
        children), or None when there is no such run."""
        record = await self.reads.get(run_id)
        if record is None:
            return None
        events = await self.reads.events(run_id)
        workflow = await self.workflow(run_id)
        return RunDetail(record, events, None if workflow is None or workflow.empty else workflow)

    async def workflow(self, run_id: uuid.UUID) -> WorkflowDetail | None:
        """A workflow run's checkpoints, waits, mailbox and children (None without the
        workflow store)."""
        if self.workflows is None:
            return None
        w = self.workflows
        return WorkflowDetail(
            (await w.load_steps(run_id))[:DETAIL_LIMIT],
            await w.waits(run_id, DETAIL_LIMIT),
            await w.signals(run_id, DETAIL_LIMIT),
            await w.children(run_id, DETAIL_LIMIT),
        )

    async def signal(
        self,
        run_id: uuid.UUID,
        name: str,
        payload: Any = None,
        idempotency_key: str | None = None,
    ) -> SignalResult:
        """Put signal ``name`` in the run's mailbox; a workflow waiting for it wakes at once,
        one that waits later takes it then. Refused for a run that is final."""
        if self.workflows is None:
            raise InvalidRequestError("signals need the workflow store")
        try:
            payload_json = signal_json(name, payload, idempotency_key)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        record = await self.reads.get(run_id)
        if record is None:
            return SignalResult(run_id, False, Reason.NOT_FOUND)
        if record.status.is_terminal:
            return SignalResult(run_id, False, Reason.FINISHED, record.status)
        try:
            sent = await self.workflows.send_signal(run_id, name, payload_json, idempotency_key)
        except StoreDataError:  # deleted between the read and the insert (foreign key)
            return SignalResult(run_id, False, Reason.NOT_FOUND)
        return SignalResult(run_id, True, None, record.status, sent.id, not sent.created)

    async def resume(self, run_id: uuid.UUID) -> ActionResult:
        """Continue a failed workflow from its failed step: its finished steps are kept."""
        if self.workflows is None:
            raise InvalidRequestError("resume needs the workflow store")
        if await self.workflows.resume(run_id) is not None:
            return ActionResult(run_id, True, status=RunStatus.PENDING)
        return await self._refused(run_id, Reason.NOT_RESUMABLE)

    async def list_runs(
        self,
        query: RunQuery | None = None,
        *,
        limit: int = 50,
        after: RunCursor | str | None = None,
    ) -> RunPage:
        """A keyset page of runs, newest first; ``after`` is the previous page's ``next`` (or
        its :meth:`~workfleet.store.RunCursor.encode` token)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}")
        if isinstance(after, str):
            try:
                after = RunCursor.decode(after)
            except ValueError as exc:
                raise InvalidRequestError(str(exc)) from None
        return await self.reads.query_runs(query or RunQuery(), limit=limit, after=after)

    async def count_runs(self, query: RunQuery | None = None, *, cap: int = 10_000) -> CappedCount:
        """How many runs ``query`` selects, counting no further than ``cap``."""
        if cap < 1:
            raise InvalidRequestError("cap must be at least 1")
        return await self.reads.count_runs(query or RunQuery(), cap=cap)

    async def cancel(self, run_id: uuid.UUID) -> ActionResult:
        """Cancel a pending or leased run (a running executor learns it promptly)."""
        if await self.runs.cancel(run_id):
            return ActionResult(run_id, True, status=RunStatus.CANCELLED)
        return await self._refused(run_id, Reason.NOT_CANCELLABLE)

    async def redrive(self, run_id: uuid.UUID) -> ActionResult:
        """Give a failed run a fresh set of attempts, runnable now."""
        if await self.runs.redrive(run_id, REDRIVABLE):
            return ActionResult(run_id, True, status=RunStatus.PENDING)
        return await self._refused(run_id, Reason.NOT_REDRIVABLE)

    async def _refused(self, run_id: uuid.UUID, reason: Reason) -> ActionResult:
        record = await self.reads.get(run_id)
        if record is None:
            return ActionResult(run_id, False, Reason.NOT_FOUND)
        if record.deleted_at is not None and reason is Reason.NOT_REDRIVABLE:
            reason = Reason.DELETED
        return ActionResult(run_id, False, reason, record.status)

    # --- bulk actions and offset pages --------------------------------------------------------

    def _batches(self) -> RunBatches:
        if self.batches is None:
            raise TypeError("Operations was built without batches (a RunBatches port)")
        return self.batches

    async def list_offset(
        self, query: RunQuery | None = None, *, limit: int = 50, offset: int = 0
    ) -> list[RunRecord]:
        """An offset page of runs, newest first (simple-workflow's paging); ``offset`` is
        bounded (deep pages read and discard every row they skip: use a cursor)."""
        from_ids = self._batches()
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_PAGE}")
        try:
            ids = await from_ids.match_ids(query or RunQuery(), limit=limit, offset=offset)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        return await from_ids.get_many(ids)

    async def find_by_key(self, key: str, query: RunQuery | None = None) -> RunRecord | None:
        """The run holding idempotency key ``key`` if ``query`` selects it, else None."""
        batches = self._batches()
        found = await batches.id_for_key(key)
        if found is None:
            return None
        narrowed = query is not None and query != RunQuery()
        if narrowed and not await batches.match_ids(query or RunQuery(), ids=[found], limit=1):
            return None
        return await self.reads.get(found)

    async def bulk(
        self,
        action: BulkAction,
        *,
        ids: Sequence[uuid.UUID] | None = None,
        query: RunQuery | None = None,
        limit: int = MAX_BULK,
        dry_run: bool = False,
    ) -> BulkResult:
        """Cancel or redrive the runs chosen by ``ids`` or by ``query`` (exactly one), at most
        ``limit`` of them, newest first; ``dry_run`` selects without changing anything.

        Only runs in a status the action applies to are selected (cancel: pending or leased;
        redrive: failed), so a filter on other statuses selects nothing.
        """
        batches = self._batches()
        if (ids is None) == (query is None):
            raise InvalidRequestError("give either ids or a filter, not both and not neither")
        if not 1 <= limit <= MAX_BULK:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_BULK}")
        if ids is not None and len(set(ids)) > limit:
            raise InvalidRequestError(f"at most {limit} ids in one bulk action")
        applies = CANCELLABLE if action is BulkAction.CANCEL else REDRIVABLE
        base = query or RunQuery()
        wanted = tuple(s for s in (base.statuses or applies) if s in applies)
        selected: list[uuid.UUID] = []
        truncated = False
        if wanted:
            narrowed = RunQuery(
                statuses=wanted,
                types=base.types,
                since=base.since,
                until=base.until,
                payload=base.payload,
                error=base.error,
            )
            unique = None if ids is None else list(dict.fromkeys(ids))
            # one more than the limit tells whether the filter selects more
            found = await batches.match_ids(narrowed, ids=unique, limit=limit + 1)
            truncated = len(found) > limit
            selected = found[:limit]
        done: list[uuid.UUID] = []
        if selected and not dry_run:
            if action is BulkAction.CANCEL:
                changed = set(await batches.cancel_many(selected))
            else:
                changed = set(await batches.redrive_many(selected, REDRIVABLE))
            done = [i for i in selected if i in changed]
        chosen = set(done if not dry_run else selected)
        given = list(dict.fromkeys(ids)) if ids is not None else selected
        skipped = [i for i in given if i not in chosen]
        return BulkResult(action, dry_run, selected, done, skipped, truncated, limit)

    # --- stats ------------------------------------------------------------------------------

    async def stats(
        self,
        prefixes: Sequence[TypePattern] = (),
        *,
        window_seconds: float = 300.0,
        cap: int = 10_000,
    ) -> list[PrefixStats]:
        """Depth and recent rates per type pattern; with none given, one per registered
        type family (``billing.%`` for ``billing.invoice.v1``)."""
        if self.stats_reads is None:
            raise TypeError("Operations was built without stats (a StatsReads port)")
        patterns = list(prefixes)
        if not patterns:
            for family in await self.stats_reads.known_prefixes():
                try:
                    patterns.append(TypePattern.parse(f"{family}.%"))
                except ValueError:  # another tool registered a name no pattern can express
                    continue
        return await self.stats_reads.prefix_stats(patterns, window_seconds=window_seconds, cap=cap)

    # --- status -----------------------------------------------------------------------------

    async def status(self) -> StatusSummary:
        """Counts, oldest due runs, live and other workers, and the types nobody serves."""
        return await self.status_reads.status_summary()

    # --- schedules --------------------------------------------------------------------------

    async def add_schedule(
        self,
        run_type: str,
        cron: str,
        *,
        timezone: str = "UTC",
        payload: Any = None,
        priority: int = 100,
        max_attempts: int = 3,
    ) -> ScheduleRecord:
        """Add a schedule: it creates a run of ``run_type`` at every fire time of ``cron`` (5
        fields or a descriptor such as ``@daily``, in ``timezone``)."""
        try:
            check_new_run(NewRun(run_type, payload, max_attempts=max_attempts))
            cron = validate_cron(cron)
            validate_timezone(timezone)
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None
        schedule_id = await self.schedules.add_schedule(
            run_type, cron, timezone, payload, priority, max_attempts
        )
        record = await self.schedules.get_schedule(schedule_id)
        if record is None:  # deleted between the two statements
            raise InvalidRequestError(f"schedule {schedule_id} was deleted as it was added")
        return record

    async def list_schedules(self, include_deleted: bool = False) -> list[ScheduleRecord]:
        """Schedules, oldest first, each with the ``problem`` that keeps it from firing."""
        return await self.schedules.list_schedules(include_deleted)

    async def get_schedule(self, schedule_id: uuid.UUID) -> ScheduleRecord | None:
        return await self.schedules.get_schedule(schedule_id)

    async def pause_schedule(self, schedule_id: uuid.UUID) -> ScheduleResult:
        """Stop a schedule from firing (pausing a paused one is done too)."""
        return self._schedule_result(
            schedule_id, await self.schedules.set_schedule_enabled(schedule_id, False)
        )

    async def resume_schedule(self, schedule_id: uuid.UUID) -> ScheduleResult:
        """Let a schedule fire again, from its next fire time after now (no catch-up); not a
        schedule workfleet cannot fire (another tool wrote its cron or timezone)."""
        record = await self.schedules.get_schedule(schedule_id)
        if record is not None and record.problem is not None:
            return ScheduleResult(schedule_id, False, Reason.CANNOT_FIRE, record.problem)
        return self._schedule_result(
            schedule_id, await self.schedules.set_schedule_enabled(schedule_id, True)
        )

    async def delete_schedule(self, schedule_id: uuid.UUID) -> ScheduleResult:
        """Soft-delete a schedule; it never fires again."""
        return self._schedule_result(schedule_id, await self.schedules.delete_schedule(schedule_id))

    @staticmethod
    def _schedule_result(schedule_id: uuid.UUID, done: bool) -> ScheduleResult:
        return ScheduleResult(schedule_id, done, None if done else Reason.NOT_FOUND)

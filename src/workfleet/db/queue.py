"""The worker's hot path on PostgreSQL: :class:`workfleet.store.RunQueue` in SQL.

Every method is one statement on an autocommit connection (the lease loops' and the completer's
kept lanes, else the pool): no transaction is ever held across an await in user code. SQL lives
in ``sql/runs.sql``. Writes about a claimed run are fenced on its :class:`Lease` (worker and
lease token); a batch statement never fails because of what one row holds (see the queries'
comments and :class:`StoreDataError`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Generator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from workfleet.db.direct import Direct
from workfleet.db.lanes import LaneUse
from workfleet.db.queries import Queries, QueryStore, store_error
from workfleet.errors import StoreDataError, StoreError
from workfleet.models import (
    ClaimedRun,
    Completion,
    Enqueued,
    HeartbeatResult,
    Lease,
    NewRun,
    RegistryEntry,
    RunStatus,
)
from workfleet.store import ClaimFilter, Observer, SentClaim, SweepResult

_log = structlog.get_logger("workfleet.sweep")

Row = dict[str, Any]


def _status(value: str | None) -> RunStatus | None:
    return None if value is None else RunStatus(value)


_raw_decode = json.JSONDecoder().raw_decode
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode_payload(text: str | None) -> tuple[Any, str | None]:
    """A claimed row's payload text as a value, or ``(None, error)`` when it cannot be decoded.

    Decoded here, row by row, rather than by the driver for the whole result: a payload too
    deeply nested for Python's parser must fail its own run, not the claim of a batch. jsonb's
    text is one JSON value with no whitespace around it, which the decoder's ``raw_decode``
    reads without ``json.loads``'s two whitespace scans (a third of its cost); anything else
    goes through ``json.loads`` and its exact error.
    """
    if text is None:
        return None, None
    try:
        value, end = _raw_decode(text)
        if end == len(text):
            return value, None
    except (ValueError, RecursionError):
        pass
    try:
        return json.loads(text), None
    except (ValueError, RecursionError) as exc:
        return None, f"payload cannot be decoded: {type(exc).__name__}: {str(exc)[:200]}"


def claimed_runs(rows: Sequence[tuple[Any, ...]]) -> list[ClaimedRun]:
    """The rows of ``claim`` / ``claim_ready`` (tuples, in their final SELECT's column order;
    times in microseconds since the epoch) as claimed runs."""
    claimed = []
    for run_id, run_type, text, attempt, maximum, priority, run_at, created, now, token in rows:
        payload, error = decode_payload(text)
        claimed.append(
            ClaimedRun(
                run_id,
                run_type,
                payload,
                attempt,
                maximum,
                priority,
                _EPOCH + timedelta(0, 0, run_at),
                _EPOCH + timedelta(0, 0, created),
                _EPOCH + timedelta(0, 0, now),
                token,
                error,
            )
        )
    return claimed


_string = json.encoder.encode_basestring_ascii
_data = json.JSONEncoder(default=str, separators=(",", ":")).encode


def _text(value: str | None) -> str:
    return "null" if value is None else _string(value)


def completions_json(completions: Sequence[Completion]) -> str:
    """The ``complete_many`` batch as one JSON document (see the query's comment): an array of
    objects with ``id``, ``token``, ``status``, ``event``, ``consume``, ``delay``, ``result``
    (the outcome's JSON, as a string), ``error``, ``data`` and ``wake``.

    Written out by hand rather than by ``json.dumps`` of a dict per outcome: the fixed keys,
    the id and the enums need no encoder, strings go through the encoder's own C escaping and
    only ``data`` through a (reused) encoder; a third of the cost.
    """
    parts = []
    for c in completions:
        lease = c.lease
        delay = "null" if c.delay is None else repr(float(c.delay))
        parts.append(
            f'{{"id":"{lease.key or lease.run_id}","token":{int(lease.token)},'
            f'"status":"{c.status.value}","event":"{c.event.value}",'
            f'"consume":{"true" if c.consume_attempt else "false"},"delay":{delay},'
            f'"result":{_text(c.result_json)},"error":{_text(c.error)},'
            f'"data":{_data(c.event_data)},"wake":{"true" if c.wake else "false"}}}'
        )
    return "[" + ",".join(parts) + "]"


def enqueue_params(runs: Sequence[NewRun], ids: Sequence[uuid.UUID] = ()) -> dict[str, Any]:
    """Bind parameters of ``enqueue_many``, or of ``enqueue_plain`` when ``ids`` are given.

    Raises ``TypeError``/``ValueError`` when a payload is not JSON (NaN and infinity included).
    """
    batch = [
        {
            "ord": ord_,
            "id": str(ids[ord_ - 1]) if ids else None,
            "type": r.type,
            # no payload means an empty object, as the fake and the CLI treat it
            "payload": {} if r.payload is None else r.payload,
            "priority": r.priority,
            "run_at": None if r.run_at is None else r.run_at.isoformat(),
            "delay": r.delay,
            "key": r.idempotency_key,
            "max_attempts": r.max_attempts,
        }
        for ord_, r in enumerate(runs, 1)
    ]
    return {"batch": json.dumps(batch, allow_nan=False, separators=(",", ":"))}


async def enqueue_on(
    conn: psycopg.AsyncConnection[Any], q: Queries, runs: Sequence[NewRun]
) -> list[Enqueued]:
    """Enqueue ``runs`` on ``conn`` (inside the caller's transaction when there is one)."""
    plain = all(r.idempotency_key is None for r in runs)
    ids = [uuid.uuid4() for _ in runs] if plain else []
    try:
        params = enqueue_params(runs, ids)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"payload is not JSON-serialisable: {exc}") from exc
    try:
        if plain:
            # nothing can conflict without keys: one INSERT, nothing read back
            await conn.execute(q["enqueue_plain"], params)
            return [Enqueued(run_id, True) for run_id in ids]
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(q["enqueue_many"], params)
            rows = await cur.fetchall()
            missing = [r["key"] for r in rows if r["id"] is None]
            found: dict[str, uuid.UUID] = {}
            if missing:
                # a duplicate inside this batch, or a concurrent insert that committed after our
                # statement's snapshot: a second statement sees it
                await cur.execute(q["ids_by_key"], {"keys": missing})
                found = {r["key"]: r["id"] for r in await cur.fetchall()}
    except psycopg.Error as exc:
        raise store_error("enqueue", exc) from exc
    result: list[Enqueued] = []
    for r in rows:
        run_id = r["id"] if r["id"] is not None else found.get(r["key"])
        if run_id is None:
            raise StoreError(f"enqueue of idempotency key {r['key']!r} returned no run id")
        result.append(Enqueued(run_id, bool(r["created"])))
    return result


class _SentClaim:
    """A claim sent on its lane from a callback (:meth:`PgQueue.claim_now`)."""

    __slots__ = ("_direct", "_error", "_name", "_use")

    def __init__(
        self, use: LaneUse, direct: Direct, name: str, error: psycopg.Error | None
    ) -> None:
        self._use = use
        self._direct = direct
        self._name = name
        self._error = error

    def __await__(self) -> Generator[Any, None, list[ClaimedRun]]:
        return self._runs().__await__()

    async def _runs(self) -> list[ClaimedRun]:
        use = self._use
        try:
            if self._error is not None:
                raise self._error
            rows = await self._direct.receive()
        except BaseException as exc:
            await use.__aexit__(type(exc), exc, exc.__traceback__)
            if isinstance(exc, psycopg.Error):
                raise store_error(self._name, exc) from exc
            raise
        await use.__aexit__(None, None, None)
        return claimed_runs(rows)

    def abandon(self) -> None:
        self._use.abandon()


class PgQueue(QueryStore):
    """The hot path in PostgreSQL, through a shared :class:`AsyncConnectionPool`.

    ``lifecycle_events`` False (``WORKFLEET_RUN_EVENTS=failures``) leaves out the ``leased``,
    ``started`` and ``succeeded`` events; every other event is written as always. ``observer``
    counts the expired leases the sweep cannot reclaim (``bad_row("reclaim_expired")``).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        schema: str,
        *,
        lifecycle_events: bool = True,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(pool, schema)
        self.lifecycle_events = lifecycle_events
        self.observer = observer

    async def claim(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> list[ClaimedRun]:
        if limit <= 0 or filt.empty:
            return []
        rows = await self._fetch_tuples(
            "claim" if waits else "claim_ready",
            self._claim_params(worker_id, filt, limit, lease_seconds),
            lane=filt,
        )
        return claimed_runs(rows)

    def claim_now(
        self,
        worker_id: str,
        filt: ClaimFilter,
        limit: int,
        lease_seconds: float,
        *,
        waits: bool = True,
    ) -> SentClaim | None:
        # only on the loop's lane, idle, with the statement prepared for these parameters
        # (every claim but a loop's first, or one after its lane was replaced)
        if limit <= 0 or filt.empty:
            return None
        use = self.lanes.connection(filt)
        direct = use.take_now()
        if direct is None:
            return None
        name = "claim" if waits else "claim_ready"
        params = self._claim_params(worker_id, filt, limit, lease_seconds)
        try:
            sent = direct.send_now(name, params)
        except psycopg.Error as exc:
            return _SentClaim(use, direct, name, exc)  # raised where it is awaited
        if not sent:
            use.abandon_unsent()
            return None
        return _SentClaim(use, direct, name, None)

    def _claim_params(
        self, worker_id: str, filt: ClaimFilter, limit: int, lease_seconds: float
    ) -> dict[str, Any]:
        return {
            "exact": list(filt.exact),
            "likes": list(filt.likes),
            "limit": limit,
            "worker_id": worker_id,
            "lease": float(lease_seconds),
            "lifecycle": self.lifecycle_events,
        }

    async def next_due(self, filt: ClaimFilter) -> float | None:
        if filt.empty:
            return None
        # a pooled connection, not the claim's lane: the loop reads this in the background,
        # and a claim made meanwhile keeps its lane
        rows = await self._fetch("next_due", {"exact": list(filt.exact), "likes": list(filt.likes)})
        if not rows or rows[0]["next_run_at"] is None:
            return None
        delta: float = (rows[0]["next_run_at"] - rows[0]["db_now"]).total_seconds()
        return delta

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> set[uuid.UUID]:
        if not completions:
            return set()
        rows = await self._fetch(
            "complete_many",
            {
                "worker_id": worker_id,
                "batch": completions_json(completions),
                "lifecycle": self.lifecycle_events,
                "wake": any(c.wake for c in completions),
            },
            lane="complete",
        )
        return {r["id"] for r in rows}

    async def heartbeat_many(
        self, worker_id: str, leases: Sequence[Lease], lease_seconds: float
    ) -> list[HeartbeatResult]:
        if not leases:
            return []
        rows = await self._fetch(
            "heartbeat_many",
            {
                "worker_id": worker_id,
                "ids": [le.run_id for le in leases],
                "tokens": [le.token for le in leases],
                "lease": float(lease_seconds),
            },
        )
        return [HeartbeatResult(r["id"], r["held"], _status(r["status"])) for r in rows]

    async def extend_lease(self, worker_id: str, lease: Lease, seconds: float) -> HeartbeatResult:
        rows = await self._fetch(
            "extend_lease",
            {
                "worker_id": worker_id,
                "id": lease.run_id,
                "token": lease.token,
                "seconds": float(seconds),
            },
        )
        return HeartbeatResult(lease.run_id, rows[0]["held"], _status(rows[0]["status"]))

    async def reclaim_expired(self, limit: int = 1000) -> SweepResult:
        try:
            rows = await self._fetch("reclaim_expired", {"limit": limit, "only": None})
        except StoreDataError as exc:
            rows = await self._reclaim_one_by_one(limit, exc)
        failed = sum(1 for r in rows if r["status"] == RunStatus.FAILED)
        return SweepResult(requeued=len(rows) - failed, failed=failed)

    async def _reclaim_one_by_one(self, limit: int, exc: StoreDataError) -> list[Row]:
        """One expired run the sweep's UPDATE cannot write stopped the batch: reclaim the
        expired runs one at a time, and skip (and count) the ones that still fail."""
        rows: list[Row] = []
        skipped = 0
        for r in await self._fetch("expired_ids", {"limit": limit}):
            try:
                rows += await self._fetch("reclaim_expired", {"limit": 1, "only": r["id"]})
            except StoreDataError as refused:
                skipped += 1
                if self.observer is not None:
                    self.observer.bad_row("reclaim_expired")
                if skipped == 1:
                    _log.error(
                        "an expired lease cannot be reclaimed; skipping it",
                        run_id=str(r["id"]),
                        error=str(refused).splitlines()[0],
                    )
        if skipped:
            _log.warning("lease sweep went run by run", skipped=skipped, cause=str(exc)[:200])
        return rows

    async def enqueue_many(self, runs: Sequence[NewRun]) -> list[Enqueued]:
        if not runs:
            return []
        async with self.pool.connection() as conn:
            return await enqueue_on(conn, self.q, runs)

    async def upsert_registry(self, entries: Sequence[RegistryEntry]) -> None:
        if not entries:
            return
        await self._fetch(
            "upsert_registry",
            {
                "names": [e.workflow_name for e in entries],
                "runtimes": [e.runtime for e in entries],
                "descriptions": [e.description for e in entries],
            },
        )

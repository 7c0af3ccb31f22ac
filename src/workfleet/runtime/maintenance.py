"""Side loops every worker runs: the cron ticker, maintenance and the pending-runs gauges.

Both are safe to run in every worker: the ticker and retention take a transaction-level advisory
lock per pass (one leader per database at a time; the others skip), schedule firings are
deduplicated by their idempotency key, and the expired-lease sweep uses ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from workfleet.errors import StoreError
from workfleet.patterns import TypePattern
from workfleet.store import RunStore


class FiredLike(Protocol):
    @property
    def type(self) -> str: ...


class PendingLike(Protocol):
    @property
    def prefix(self) -> str: ...
    @property
    def pending(self) -> int: ...
    @property
    def oldest_age_seconds(self) -> float: ...


class OpsStore(Protocol):
    """What the side loops need from the operations store (PostgreSQL: ``AdminStore``)."""

    async def tick_schedules(self) -> Sequence[Any]: ...
    async def seconds_until_next_schedule(self) -> float | None: ...
    async def run_retention(
        self,
        succeeded_days: float,
        cancelled_days: float,
        failed_days: float,
        batch: int = 1000,
    ) -> int: ...
    async def touch_worker(self, worker_id: str) -> None: ...
    async def prune_workers(self, older_than: float) -> int: ...
    async def pending_by_prefix(self, patterns: Sequence[TypePattern]) -> Sequence[PendingLike]: ...


@dataclass(frozen=True, slots=True)
class MaintenanceConfig:
    worker_id: str
    schedule_interval: float = 10.0
    sweep_interval: float = 5.0
    maintenance_interval: float = 60.0
    retention_succeeded_days: float = 7.0
    retention_cancelled_days: float = 7.0
    retention_failed_days: float = 30.0
    schedules_enabled: bool = True
    maintenance_enabled: bool = True


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    except TimeoutError:
        return False
    return True


async def ticker_loop(
    ops: OpsStore,
    cfg: MaintenanceConfig,
    on_fired: Callable[[str], None],
    stop: asyncio.Event,
    log: Any,
) -> None:
    """Fire due cron schedules; sleep until the next one (at most ``schedule_interval``)."""
    while not stop.is_set():
        wait = cfg.schedule_interval
        try:
            fired = await ops.tick_schedules()
            for item in fired:
                run_type = getattr(item, "type", None)
                if isinstance(run_type, str):
                    on_fired(run_type)
            if fired:
                log.info("schedules fired", runs=len(fired))
            due = await ops.seconds_until_next_schedule()
            if due is not None:
                wait = min(wait, max(due, 0.05))
        except StoreError as exc:
            log.warning("schedule tick failed", error=str(exc))
        if await _pause(stop, wait):
            return


async def maintenance_loop(
    store: RunStore,
    ops: OpsStore,
    cfg: MaintenanceConfig,
    stop: asyncio.Event,
    log: Any,
    on_requeued: Callable[[], None],
) -> None:
    """Sweep expired leases often; apply retention and prune dead workers now and then."""
    since_retention = cfg.maintenance_interval  # run retention on the first pass
    while not stop.is_set():
        try:
            await ops.touch_worker(cfg.worker_id)
            swept = await store.reclaim_expired()
            if swept.requeued or swept.failed:
                log.warning(
                    "expired leases reclaimed", requeued=swept.requeued, failed=swept.failed
                )
                if swept.requeued:
                    on_requeued()
            if cfg.maintenance_enabled and since_retention >= cfg.maintenance_interval:
                since_retention = 0.0
                deleted = await ops.run_retention(
                    cfg.retention_succeeded_days,
                    cfg.retention_cancelled_days,
                    cfg.retention_failed_days,
                )
                pruned = await ops.prune_workers(max(cfg.maintenance_interval * 5, 300.0))
                if deleted or pruned:
                    log.info("maintenance", runs_deleted=deleted, workers_pruned=pruned)
        except StoreError as exc:
            log.warning("maintenance pass failed", error=str(exc))
        since_retention += cfg.sweep_interval
        if await _pause(stop, cfg.sweep_interval):
            return


async def pending_loop(
    ops: OpsStore,
    patterns: Sequence[TypePattern],
    interval: float,
    report: Callable[[str, int, float], None],
    stop: asyncio.Event,
    log: Any,
) -> None:
    """Refresh the pending / oldest-pending gauges every ``interval`` seconds.

    One indexed statement per interval for all of this worker's prefixes, whatever the scrape
    rate: scrapes read the cached values. After a failed refresh the last values stay; the
    claim-error counter and readiness already report the outage.
    """
    failing = False
    while not stop.is_set():
        try:
            for stat in await ops.pending_by_prefix(patterns):
                report(stat.prefix, stat.pending, stat.oldest_age_seconds)
            failing = False
        except StoreError as exc:
            if not failing:  # once per outage, not once per interval
                log.warning("pending gauges not refreshed", error=str(exc))
            failing = True
        if await _pause(stop, interval):
            return

"""Side loops every worker runs: the cron ticker, maintenance and the pending-runs gauges.

All are safe to run in every worker: the ticker and retention take a transaction-level advisory
lock per pass (one leader per database at a time; the others skip), schedule firings are
deduplicated by their idempotency key, and the expired-lease sweep uses ``SKIP LOCKED``. A
failed pass is logged and retried on the next one; it never ends the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from workfleet.errors import StoreError
from workfleet.observability.logging import Logger
from workfleet.patterns import TypePattern
from workfleet.settings import MaintenanceSettings
from workfleet.store import MaintenanceStore, RunQueue, ScheduleStore


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), max(seconds, 0.0))
    except TimeoutError:
        return False
    return True


async def ticker_loop(
    schedules: ScheduleStore,
    settings: MaintenanceSettings,
    on_fired: Callable[[str], None],
    stop: asyncio.Event,
    log: Logger,
) -> None:
    """Fire due cron schedules; sleep until the next one (at most ``schedule_interval``)."""
    while not stop.is_set():
        wait = settings.schedule_interval
        try:
            fired = await schedules.tick_schedules()
            for item in fired:
                on_fired(item.type)
            if fired:
                log.info("schedules fired", runs=len(fired))
            due = await schedules.seconds_until_next_schedule()
            if due is not None:
                wait = min(wait, max(due, 0.05))
        except StoreError as exc:
            log.warning("schedule tick failed", error=str(exc))
        if await _pause(stop, wait):
            return


async def maintenance_loop(
    queue: RunQueue,
    store: MaintenanceStore,
    settings: MaintenanceSettings,
    worker_id: str,
    stop: asyncio.Event,
    log: Logger,
    on_requeued: Callable[[], None],
) -> None:
    """Sweep expired leases often; apply retention and prune dead workers now and then."""
    since_retention = settings.maintenance_interval  # run retention on the first pass
    while not stop.is_set():
        try:
            await store.touch_worker(worker_id)
            swept = await queue.reclaim_expired()
            if swept.requeued or swept.failed:
                log.warning(
                    "expired leases reclaimed", requeued=swept.requeued, failed=swept.failed
                )
                if swept.requeued:
                    on_requeued()
            if settings.maintenance_enabled and since_retention >= settings.maintenance_interval:
                since_retention = 0.0
                deleted = await store.run_retention(
                    settings.retention_succeeded_days,
                    settings.retention_cancelled_days,
                    settings.retention_failed_days,
                )
                pruned = await store.prune_workers(max(settings.maintenance_interval * 5, 300.0))
                if deleted or pruned:
                    log.info("maintenance", runs_deleted=deleted, workers_pruned=pruned)
        except StoreError as exc:
            log.warning("maintenance pass failed", error=str(exc))
        since_retention += settings.sweep_interval
        if await _pause(stop, settings.sweep_interval):
            return


async def pending_loop(
    store: MaintenanceStore,
    patterns: Sequence[TypePattern],
    interval: float,
    report: Callable[[str, int, float], None],
    stop: asyncio.Event,
    log: Logger,
    report_waiting: Callable[[str, str, int], None] | None = None,
) -> None:
    """Refresh the pending / oldest-pending (and waiting-workflow) gauges every ``interval``
    seconds.

    One indexed statement per interval for all of this worker's prefixes, whatever the scrape
    rate: scrapes read the cached values. After a failed refresh the last values stay; the
    claim-error counter and readiness already report the outage.
    """
    failing = False
    while not stop.is_set():
        try:
            for stat in await store.pending_by_prefix(patterns):
                report(stat.prefix, stat.pending, stat.oldest_age_seconds)
                for kind, count in stat.waiting:
                    if report_waiting is not None:
                        report_waiting(stat.prefix, kind, count)
            failing = False
        except StoreError as exc:
            if not failing:  # once per outage, not once per interval
                log.warning("pending gauges not refreshed", error=str(exc))
            failing = True
        if await _pause(stop, interval):
            return

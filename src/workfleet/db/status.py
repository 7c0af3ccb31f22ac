"""What ``workfleet status`` shows, on PostgreSQL: :class:`workfleet.store.StatusReads` in SQL
(``sql/status.sql``).

Every statement is bounded: counts group the partial indexes' rows, and the look for other
pollers reads capped index ranges, never the whole table of finished runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from workfleet.db.queries import QueryStore
from workfleet.models import RunStatus
from workfleet.patterns import TypePattern
from workfleet.store import (
    ACTIVE_WITHIN,
    LIVE_WITHIN,
    OldestPending,
    OtherWorker,
    StatusSummary,
    TypeCount,
    WorkerRecord,
)

# How `workfleet status` looks for other workers (see the status_other_workers query): runs
# they held or finished in the last 15 minutes, read from at most 2,000 leases and 2,000
# finished runs, plus the 20 newest runs per status of up to 200 otherwise unserved types; at
# most 50 workers are listed. Measured on PostgreSQL 15 with a million finished runs: 0.7 ms.
OTHERS_SCAN = 2000
OTHERS_PER_TYPE = 20
OTHERS_PROBED_TYPES = 200
OTHERS_LISTED = 50


class PgStatus(QueryStore):
    """Status reads for the CLI and the API."""

    async def live_workers(self, live_within: float = LIVE_WITHIN) -> list[WorkerRecord]:
        rows = await self._fetch("workers_live", {"live_within": float(live_within)})
        return [WorkerRecord(**r) for r in rows]

    async def status_summary(
        self, live_within: float = LIVE_WITHIN, active_within: float = ACTIVE_WITHIN
    ) -> StatusSummary:
        """Counts by type and status, oldest due pending run per type, live workers, other
        workers active within ``active_within`` seconds, and the pending types nobody serves."""
        counts = [
            TypeCount(r["type"], RunStatus(r["status"]), int(r["count"]))
            for r in await self._fetch("status_counts", {})
        ]
        oldest = [
            OldestPending(r["type"], float(r["age_seconds"]), int(r["due"]))
            for r in await self._fetch("status_oldest_pending", {})
        ]
        workers = await self.live_workers(live_within)
        patterns = [TypePattern.parse(p) for w in workers for p in w.patterns if p]
        candidates = sorted(o.type for o in oldest if not any(p.matches(o.type) for p in patterns))
        others = await self.other_workers(candidates[:OTHERS_PROBED_TYPES], active_within)
        served = {t for w in others for t in w.types}
        unserved = [t for t in candidates if t not in served]
        return StatusSummary(counts, oldest, workers, unserved, others, active_within)

    async def other_workers(
        self, types: Sequence[str] = (), within: float = ACTIVE_WITHIN
    ) -> list[OtherWorker]:
        """Workers that are not workfleet's, from the ``leased_by`` of runs they held or
        finished within ``within`` seconds, most recently seen first (bounded index reads:
        current leases, the latest finished runs, and the newest runs of each of ``types``)."""
        rows = await self._fetch(
            "status_other_workers",
            {
                "within": float(within),
                "types": list(types),
                "scan": OTHERS_SCAN,
                "per_type": OTHERS_PER_TYPE,
                "workers": OTHERS_LISTED,
            },
        )
        return [
            OtherWorker(r["worker_id"], list(r["types"]), int(r["runs"]), r["last_seen_at"])
            for r in rows
        ]

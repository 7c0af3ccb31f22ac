"""Advisory locks, in one place: every lock workfleet takes is named here.

Keys are text hashed by PostgreSQL (``hashtextextended(key, 0)``), scoped by schema so two
workfleet schemas in one database never contend.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import psycopg

    from workfleet.db.queries import Queries

LockTask = Literal["migrate", "schedules", "retention"]


def lock_key(task: LockTask, schema: str) -> str:
    """The advisory lock key of ``task`` in ``schema``."""
    return f"workfleet:{task}:{schema}"


async def lead(
    cur: psycopg.AsyncCursor[dict[str, Any]],
    q: Queries,
    task: Literal["schedules", "retention"],
    schema: str,
) -> datetime | None:
    """Try to lead this pass of a leader-only ``task``: the lock is held until ``cur``'s
    transaction ends. The database's now when it was taken; None when another worker holds it."""
    await cur.execute(q["leader_lock"], {"key": lock_key(task, schema)})
    row = await cur.fetchone()
    if not row or not row["locked"]:
        return None
    now: datetime = row["db_now"]
    return now

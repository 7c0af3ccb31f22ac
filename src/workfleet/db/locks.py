"""Advisory lock keys, in one place: every lock workfleet takes is named here.

Keys are text hashed by PostgreSQL (``hashtextextended(key, 0)``), scoped by schema so two
workfleet schemas in one database never contend.
"""

from __future__ import annotations

from typing import Literal

LockTask = Literal["migrate", "schedules", "retention"]


def lock_key(task: LockTask, schema: str) -> str:
    """The advisory lock key of ``task`` in ``schema``."""
    return f"workfleet:{task}:{schema}"

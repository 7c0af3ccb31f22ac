"""The workflow author's API: :class:`Workflow`, what a workflow function receives as ``wf``.

Everything a workflow does that must not happen twice goes through ``wf``: steps, durable
sleeps, signals, children, deterministic values. Each is checkpointed under a key; replaying
the function after a crash, a retry or a wait returns the stored result instead of running
again. Code between those calls is replayed every time, so it must be deterministic (no clock,
no randomness, no I/O: use ``wf.now()``, ``wf.random()`` and steps).
"""

from __future__ import annotations

import json
import random as _random
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from workfleet.checkpoints import (
    StepKind,
    StepStatus,
)
from workfleet.workflow.base import activity, uuid7_value
from workfleet.workflow.steps import StepsMixin
from workfleet.workflow.waits import WaitsMixin

P = TypeVar("P")
PATCHES_KEY = "__patches__"


class Workflow(StepsMixin[P], WaitsMixin[P]):
    """One execution of a durable workflow run (a :class:`~workfleet.Run` with checkpoints).

    ``id``, ``type``, ``payload``, ``attempt``, ``cancelled``, ``log`` and ``heartbeat`` are
    the run's, as for any executor. Steps: :meth:`step`, :meth:`transaction`; waits:
    :meth:`sleep`, :meth:`sleep_until`, :meth:`wait_signal`, :meth:`gather`, :meth:`child`;
    children: :meth:`start_child`, :meth:`start_children`; deterministic values: :meth:`now`,
    :meth:`uuid7`, :meth:`random`; versioning: :meth:`patched`.
    """

    __slots__ = ()

    # --- deterministic values -------------------------------------------------------------

    @activity
    async def now(self, *, key: str | None = None) -> datetime:
        """The current time, recorded once: a replay gets the same value. Concurrent calls
        need distinct ``key=`` values, as steps do."""
        text = await self._value("now", key, lambda: self._session.db_now().isoformat())
        return datetime.fromisoformat(text)

    @activity
    async def uuid7(self, *, key: str | None = None) -> uuid.UUID:
        """A time-ordered UUID (version 7), recorded once."""
        return uuid.UUID(await self._value("uuid7", key, lambda: str(uuid7_value())))

    @activity
    async def random(self, *, key: str | None = None) -> float:
        """A random float in [0, 1), recorded once."""
        return float(await self._value("random", key, _random.random))

    async def _value(self, name: str, explicit: str | None, make: Callable[[], Any]) -> Any:
        self._guard()
        key = self._key(name, explicit)
        record = self._reach(key, StepKind.VALUE, name)
        if record is not None:
            return record.output
        value = make()
        await self._write(
            key, name, StepStatus.SUCCEEDED, json.dumps(value), 1, None, None, None, StepKind.VALUE
        )
        return value

    @activity
    async def patched(self, patch_id: str) -> bool:
        """True when this run started under code that knows ``patch_id`` (declared with
        ``@plugin.workflow(..., patches=[...])``): runs in flight from before the patch take
        the old branch, new runs the new one. See docs/workflows.md, "Versioning"."""
        s = self._session
        if patch_id not in s.declared_patches:
            raise ValueError(
                f"patch {patch_id!r} is not declared: "
                "add it to @plugin.workflow(..., patches=[...])"
            )
        record = s.history.reach(PATCHES_KEY, StepKind.PATCHES, "patches")
        if record is None:
            # a run with no checkpoint yet starts under this code; one with checkpoints
            # started under code that knew none of these patches
            known = list(s.declared_patches) if s.history.loaded == 0 else []
            await self._write(
                PATCHES_KEY,
                "patches",
                StepStatus.SUCCEEDED,
                json.dumps(known),
                1,
                None,
                None,
                None,
                StepKind.PATCHES,
            )
            return patch_id in known
        return patch_id in (record.output or [])

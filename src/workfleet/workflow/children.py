"""Child runs as a workflow sees them: what to start, a handle on one started, its outcome."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workfleet.checkpoints import ChildState, NewChild
from workfleet.encoding import to_json
from workfleet.models import NewRun, check_new_run


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """A child run to start: an ordinary run of ``type`` (any prefix: whichever release serves
    it runs it). ``key`` tells children of one fan-out apart (default: their position)."""

    type: str
    payload: Any = None
    key: str | None = None
    priority: int | None = None
    max_attempts: int | None = None


@dataclass(frozen=True, slots=True)
class ChildHandle:
    """A started child: its run id, its key within the parent and its type."""

    id: uuid.UUID
    key: str
    type: str

    def to_json(self) -> dict[str, str]:
        return {"id": str(self.id), "key": self.key, "type": self.type}

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ChildHandle:
        return cls(uuid.UUID(item["id"]), item["key"], item["type"])


@dataclass(frozen=True, slots=True)
class ChildResult:
    """A finished child: ``status`` (succeeded, failed or cancelled), its ``result`` when it
    succeeded, its last ``error`` otherwise."""

    id: uuid.UUID
    key: str
    type: str
    status: str
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def of(cls, handle: ChildHandle, state: ChildState) -> ChildResult:
        return cls(handle.id, handle.key, handle.type, str(state.status), state.result, state.error)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "key": self.key,
            "type": self.type,
            "status": self.status,
            "result": self.result,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> ChildResult:
        return cls(
            uuid.UUID(item["id"]),
            item["key"],
            item["type"],
            item["status"],
            item.get("result"),
            item.get("error"),
        )


def new_children(step_key: str, specs: Sequence[ChildSpec]) -> list[NewChild]:
    """Validate ``specs`` and give each its key under ``step_key``; ``ValueError`` names the
    first bad one (nothing is started)."""
    if not specs:
        raise ValueError("start_children() needs at least one child")
    out: list[NewChild] = []
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        key = f"{step_key}/{spec.key if spec.key is not None else i}"
        if key in seen:
            raise ValueError(f"two children share the key {key!r}")
        seen.add(key)
        check_new_run(NewRun(spec.type, spec.payload, max_attempts=spec.max_attempts))
        payload = {} if spec.payload is None else spec.payload
        out.append(NewChild(key, spec.type, to_json(payload), spec.priority, spec.max_attempts))
    return out

"""A workflow run's recorded history during one execution: pure bookkeeping, no I/O.

Steps are keyed by name, never by call order alone: ``charge`` for the first step named
``charge``, ``charge#2`` for the second, or the caller's explicit key. Replaying a recorded key
checks that the same kind of thing with the same name reached it; anything else is a
:class:`NonDeterminismError`, which fails the run at once (no retry can fix changed code).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from workfleet.checkpoints import StepKind, StepRecord
from workfleet.models import Fail

MAX_KEY_BYTES = 255

# History kinds that are bookkeeping rather than the workflow's own steps: they are reached in
# any order (or never), so they say nothing about whether the code changed.
_UNORDERED = frozenset({StepKind.PATCHES})


class NonDeterminismError(Fail):
    """This execution does not match the run's recorded history (the workflow's code changed
    under a run in flight). The run fails at once; see docs/workflows.md, "Versioning"."""


class History:
    """The recorded checkpoints of one run, and which of them this execution reached."""

    __slots__ = ("_auto", "_auto_live", "_pending", "loaded", "reached", "records")

    def __init__(self, records: Iterable[StepRecord]) -> None:
        self.records: dict[str, StepRecord] = {r.key: r for r in records}
        self.loaded = len(self.records)  # checkpoints the run had when this execution began
        self.reached: set[str] = set()
        # recorded checkpoints of the workflow's own code not reached yet by this execution
        self._pending = {k for k, r in self.records.items() if r.kind not in _UNORDERED}
        self._auto: Counter[str] = Counter()
        self._auto_live: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.records)

    def key_for(self, name: str, explicit: str | None) -> str:
        """The key of the next step called ``name``: ``explicit`` when given, else ``name`` for
        the first, ``name#2`` for the second, and so on."""
        if explicit is not None:
            key = explicit
        else:
            self._auto[name] += 1
            n = self._auto[name]
            key = name if n == 1 else f"{name}#{n}"
        if not key or len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise ValueError(f"a step key must be 1 to {MAX_KEY_BYTES} bytes long, got {key!r}")
        if not key.isprintable() or "\x00" in name:
            # text columns refuse NUL and lone surrogates; keys are read back in CLI tables
            raise ValueError(f"a step key or name must be printable text, got {key!r}")
        try:
            (key + name).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"a step key or name must be valid text, got {key!r}") from None
        if key in self.reached:
            raise ValueError(
                f"step key {key!r} is used twice in one run: give one of the calls its own key="
            )
        return key

    def enter_auto(self, name: str, explicit: str | None) -> None:
        """Note a step called ``name`` starts; concurrent steps of one name need explicit keys
        (their ``#n`` numbering would depend on scheduling order)."""
        if explicit is not None:
            return
        if self._auto_live[name]:
            raise ValueError(
                f"two steps named {name!r} run concurrently: give each its own key= "
                "(numbering them by call order would depend on scheduling)"
            )
        self._auto_live[name] += 1

    def leave_auto(self, name: str, explicit: str | None) -> None:
        if explicit is None and self._auto_live[name]:
            self._auto_live[name] -= 1

    def reach(self, key: str, kind: StepKind, name: str) -> StepRecord | None:
        """Mark ``key`` reached; its record if one exists and matches ``kind`` and ``name``."""
        self.reached.add(key)
        self._pending.discard(key)
        record = self.records.get(key)
        if record is None:
            return None
        if record.kind != kind or record.name != name:
            raise NonDeterminismError(
                f"step key {key!r} was recorded as {record.kind} {record.name!r} but this "
                f"execution reached it as {kind} {name!r}: the workflow's code changed under a "
                "run in flight (bump the type's version, or branch with wf.patched())"
            )
        return record

    @property
    def has_unreached(self) -> bool:
        return bool(self._pending)

    def unreached(self) -> list[StepRecord]:
        """Recorded checkpoints this execution has not reached yet, oldest first."""
        return sorted(
            (self.records[k] for k in self._pending),
            key=lambda r: (r.started_at is None, r.started_at, r.key),
        )

    def record(self, record: StepRecord) -> None:
        """Keep a checkpoint this execution wrote."""
        self.records[record.key] = record

"""Which lease loops a worker runs: one per configured prefix, each with its claim filter.

Pure: settings and the executor registry in, :class:`LoopSpec` values out.
"""

from __future__ import annotations

from dataclasses import dataclass

from workfleet.discovery import ExecutorRegistry
from workfleet.errors import ConfigError
from workfleet.patterns import TypePattern, claim_filter
from workfleet.settings import RuntimeSettings
from workfleet.store import ClaimFilter


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """One lease loop: its prefix, concurrency, the patterns it serves and its claim filter.

    ``patterns`` is the prefix intersected with each executor pattern: the types this loop may
    claim, in Python's words; ``filt`` says the same to SQL.
    """

    pattern: TypePattern
    concurrency: int
    patterns: tuple[TypePattern, ...]
    filt: ClaimFilter

    @classmethod
    def build(cls, pattern: TypePattern, concurrency: int, registry: ExecutorRegistry) -> LoopSpec:
        exact, likes = claim_filter(pattern, registry.patterns)
        candidates = [TypePattern.parse(e) for e in exact] + [
            p for p in registry.patterns if pattern.intersect(p) is not None
        ]
        patterns = tuple(p for p in (pattern.intersect(q) for q in candidates) if p is not None)
        return cls(pattern, concurrency, patterns, ClaimFilter(tuple(exact), tuple(likes)))


def loop_specs(settings: RuntimeSettings, registry: ExecutorRegistry) -> list[LoopSpec]:
    """The lease loops to run; raise :class:`ConfigError` for a prefix no executor can serve.

    With no prefixes configured, one loop serves every type the plugins execute.
    """
    if not settings.prefixes:
        return [LoopSpec.build(TypePattern.parse("%"), settings.concurrency, registry)]
    loops = []
    patterns = registry.patterns
    for spec in settings.prefixes:
        if not any(spec.pattern.intersect(p) for p in patterns):
            raise ConfigError(
                f"prefix {str(spec.pattern)!r} matches no executor of the installed plugins "
                f"(executors: {', '.join(map(str, patterns)) or 'none'})",
                env_var="WORKFLEET_PREFIXES",
            )
        loops.append(
            LoopSpec.build(spec.pattern, spec.concurrency or settings.concurrency, registry)
        )
    return loops


# Connections a worker serving workflows adds for their checkpoint writes, at most.
WORKFLOW_CONNECTIONS = 16


def default_pool_size(loops: list[LoopSpec], registry: ExecutorRegistry) -> int:
    """The pool size when ``WORKFLEET_POOL_MAX_SIZE`` is not set: a connection per lease loop
    and one for the outcome writer, two for everything else, and — when a plugin registers a
    durable workflow, whose executions write checkpoints as they go — one per concurrent slot,
    up to :data:`WORKFLOW_CONNECTIONS` more (a 10-step workflow benchmark: 130 workflows/s on
    five connections, 178 on twenty-five)."""
    size = len(loops) + 4
    if any(spec.workflow for spec in registry.executors.values()):
        size += min(sum(lp.concurrency for lp in loops), WORKFLOW_CONNECTIONS)
    return size

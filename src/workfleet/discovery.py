"""Plugin discovery as a typed pipeline: find → load → validate → register.

*find* reads installed distributions' metadata only (sorted, de-duplicated); *load* imports one
entry point and turns any failure into a :class:`PluginError` naming the distribution and entry
point; *validate* checks the object is a :class:`Plugin`; *register* builds the
:class:`ExecutorRegistry`, where two plugins claiming the same type pattern is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata

from workfleet.errors import PluginError
from workfleet.patterns import TypePattern, best_match
from workfleet.plugin import ExecutorSpec, Plugin

ENTRY_POINT_GROUP = "workfleet.plugins"


@dataclass(frozen=True, slots=True, order=True)
class FoundPlugin:
    """An entry point found in installed metadata; nothing imported yet."""

    distribution: str
    name: str
    value: str
    version: str = ""

    def describe(self) -> str:
        return f"entry point {self.name!r} ({self.value}) of distribution {self.distribution!r}"


@dataclass(frozen=True, slots=True)
class LoadFailure:
    """A plugin that could not be used, kept for ``workfleet plugins`` and the metrics."""

    plugin: FoundPlugin
    error: str


def find_plugins(group: str = ENTRY_POINT_GROUP) -> list[FoundPlugin]:
    """Entry points of ``group`` across installed distributions, sorted and de-duplicated."""
    seen: set[tuple[str, str]] = set()
    found: list[FoundPlugin] = []
    for dist in metadata.distributions():
        dist_name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group != group or (dist_name, ep.name) in seen:
                continue
            seen.add((dist_name, ep.name))
            found.append(FoundPlugin(dist_name, ep.name, ep.value, dist.version or ""))
    return sorted(found)


def load_plugin(found: FoundPlugin) -> Plugin:
    """Import one entry point and validate it is a :class:`Plugin`."""
    try:
        obj = metadata.EntryPoint(found.name, found.value, ENTRY_POINT_GROUP).load()
    # SystemExit too: a plugin calling sys.exit() at import must not end the worker silently
    except (Exception, SystemExit) as exc:
        raise PluginError(
            f"cannot load {found.describe()}: {type(exc).__name__}: {exc}",
            distribution=found.distribution,
            entry_point=found.name,
        ) from exc
    if not isinstance(obj, Plugin):
        raise PluginError(
            f"{found.describe()} is a {type(obj).__name__}, not a workfleet.Plugin",
            distribution=found.distribution,
            entry_point=found.name,
        )
    if not obj.executors:
        raise PluginError(
            f"{found.describe()} registers no executors",
            distribution=found.distribution,
            entry_point=found.name,
        )
    return obj


@dataclass(slots=True)
class ExecutorRegistry:
    """Executors by type pattern; a run's type resolves to the most specific pattern."""

    executors: dict[TypePattern, ExecutorSpec] = field(default_factory=dict)
    _cache: dict[str, ExecutorSpec | None] = field(default_factory=dict)

    @classmethod
    def from_plugins(cls, plugins: Iterable[Plugin]) -> ExecutorRegistry:
        registry = cls()
        for plugin in plugins:
            for spec in plugin.executors:
                registry.add(spec)
        return registry

    def add(self, spec: ExecutorSpec) -> None:
        existing = self.executors.get(spec.pattern)
        if existing is not None:
            raise PluginError(
                f"type {str(spec.pattern)!r} is claimed by plugin {existing.plugin!r} "
                f"({existing.qualname}) and plugin {spec.plugin!r} ({spec.qualname})"
            )
        self.executors[spec.pattern] = spec
        self._cache.clear()

    @property
    def patterns(self) -> list[TypePattern]:
        return sorted(self.executors)

    def resolve(self, run_type: str) -> ExecutorSpec | None:
        """The executor for ``run_type``: exact type first, then the longest prefix."""
        if run_type not in self._cache:
            pattern = best_match(run_type, self.executors)
            self._cache[run_type] = None if pattern is None else self.executors[pattern]
        return self._cache[run_type]

    def __len__(self) -> int:
        return len(self.executors)


@dataclass(frozen=True, slots=True)
class Discovery:
    """The outcome of discovery: loaded plugins, the registry, and what failed."""

    found: Sequence[FoundPlugin]
    plugins: Sequence[Plugin]
    registry: ExecutorRegistry
    failures: Sequence[LoadFailure]


def discover(
    *,
    skip_broken: bool = False,
    group: str = ENTRY_POINT_GROUP,
    extra: Iterable[Plugin] = (),
) -> Discovery:
    """Find, load, validate and register every installed plugin (plus ``extra`` ones).

    A plugin that fails to load raises :class:`PluginError` unless ``skip_broken``, in which
    case it is recorded in ``failures`` and the others are used.
    """
    found = find_plugins(group)
    plugins: list[Plugin] = list(extra)
    failures: list[LoadFailure] = []
    for item in found:
        try:
            plugins.append(load_plugin(item))
        except PluginError as exc:
            if not skip_broken:
                raise
            failures.append(LoadFailure(item, str(exc)))
    registry = ExecutorRegistry.from_plugins(plugins)
    return Discovery(found, plugins, registry, failures)

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
    # where each pattern's executor came from: "plugin 'x'" and its entry point, if any
    _sources: dict[TypePattern, tuple[str, FoundPlugin | None]] = field(default_factory=dict)

    @classmethod
    def from_plugins(cls, plugins: Iterable[Plugin]) -> ExecutorRegistry:
        registry = cls()
        for plugin in plugins:
            registry.add_plugin(plugin)
        return registry

    def add_plugin(self, plugin: Plugin, found: FoundPlugin | None = None) -> None:
        """Register every executor of ``plugin``, or none: a pattern another plugin claimed
        already raises :class:`PluginError` naming both (``found``: where ``plugin`` came from)
        and saying how to fix it."""
        source = f"plugin {plugin.name!r}" + (f", {found.describe()}" if found else "")
        for spec in plugin.executors:
            if spec.pattern in self.executors:
                existing = self.executors[spec.pattern]
                first, first_found = self._sources[spec.pattern]
                dists = sorted({f.distribution for f in (first_found, found) if f is not None})
                uninstall = " or ".join(f"pip uninstall {d}" for d in dists)
                raise PluginError(
                    f"type {str(spec.pattern)!r} is claimed twice: by {existing.qualname} of "
                    f"{first}, and by {spec.qualname} of {source}. Each type has one "
                    "executor: rename one of the types (with your organisation's prefix, "
                    f"say 'acme.{spec.pattern}'), or uninstall the distribution you do not "
                    "want" + (f" ({uninstall})" if uninstall else ""),
                    distribution=found.distribution if found else None,
                    entry_point=found.name if found else None,
                )
        for spec in plugin.executors:
            self.executors[spec.pattern] = spec
            self._sources[spec.pattern] = (source, found)
        self._cache.clear()

    def add(self, spec: ExecutorSpec) -> None:
        """Register one executor (a pattern already claimed raises :class:`PluginError`)."""
        existing = self.executors.get(spec.pattern)
        if existing is not None:
            raise PluginError(
                f"type {str(spec.pattern)!r} is claimed by {existing.qualname} of "
                f"{self._sources[spec.pattern][0]} and by "
                f"{spec.qualname} of plugin {spec.plugin!r}"
            )
        self.executors[spec.pattern] = spec
        self._sources[spec.pattern] = (f"plugin {spec.plugin!r}", None)
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

    A plugin that fails to load, or claims a type another plugin claimed first, raises
    :class:`PluginError` unless ``skip_broken``, in which case it is recorded in ``failures``
    and the others are used.
    """
    found = find_plugins(group)
    registry = ExecutorRegistry.from_plugins(extra)
    plugins: list[Plugin] = list(extra)
    failures: list[LoadFailure] = []
    for item in found:
        try:
            plugin = load_plugin(item)
            registry.add_plugin(plugin, item)
        except PluginError as exc:
            if not skip_broken:
                raise
            failures.append(LoadFailure(item, str(exc)))
            continue
        plugins.append(plugin)
    return Discovery(found, plugins, registry, failures)

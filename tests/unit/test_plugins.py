"""Plugin discovery: find → load → validate → register, with errors naming the package."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workfleet import Plugin
from workfleet.discovery import ExecutorRegistry, FoundPlugin, discover, find_plugins, load_plugin
from workfleet.errors import PluginError
from workfleet.patterns import TypePattern

EXAMPLE_PATTERNS = {
    "content.thumbnail.v1",
    "billing.invoice.v1",
    "billing.payment.v1",
    "media.video.v1",
    "notify.%",
    "shop.order.v1",
    "etl.pipeline.v1",
    "orders.process.v1",
    "users.onboarding.v1",
}


def _distribution(root: Path, name: str, module: str, source: str, target: str) -> None:
    """An installed distribution on ``root``: a module and its dist-info with one entry point."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[workfleet.plugins]\n{module} = {target}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on ``sys.path`` for throw-away distributions, forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def _patterns(registry: ExecutorRegistry) -> set[str]:
    return {str(p) for p in registry.patterns}


# --- find -------------------------------------------------------------------------------------


def test_examples_are_found_from_metadata() -> None:
    found = [f for f in find_plugins() if f.distribution == "workfleet-examples"]
    assert [(f.name, f.value) for f in found] == [
        ("billing", "workfleet_examples.billing:plugin"),
        ("content", "workfleet_examples.content:plugin"),
        ("media", "workfleet_examples.media:plugin"),
        ("notify", "workfleet_examples.notify:plugin"),
        ("workflows", "workfleet_examples.workflows:plugin"),
    ]
    assert all(f.version for f in found)
    assert find_plugins() == sorted(find_plugins()), "a stable order, whatever sys.path says"


def test_find_reads_metadata_only(site: Path) -> None:
    _distribution(site, "lazy-plugin", "lazy_plugin", "raise RuntimeError('imported')\n", "x:p")
    found = [f for f in find_plugins() if f.distribution == "lazy-plugin"]
    assert found == [FoundPlugin("lazy-plugin", "lazy_plugin", "x:p", "0.1")]


# --- load and validate ------------------------------------------------------------------------


def test_examples_are_discovered() -> None:
    discovery = discover()
    assert _patterns(discovery.registry) >= EXAMPLE_PATTERNS
    assert {"billing", "content", "media", "notify", "workflows"} <= {
        p.name for p in discovery.plugins
    }
    assert discovery.failures == []


def test_import_failure_names_distribution_and_entry_point(site: Path) -> None:
    _distribution(
        site,
        "broken-plugin",
        "broken_plugin",
        "raise RuntimeError('missing dependency: libfoo')\n",
        "broken_plugin:plugin",
    )
    with pytest.raises(PluginError) as info:
        discover()
    assert info.value.distribution == "broken-plugin"
    assert info.value.entry_point == "broken_plugin"
    message = str(info.value)
    assert "broken-plugin" in message and "broken_plugin" in message
    assert "RuntimeError" in message and "libfoo" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_exiting_at_import_is_a_plugin_error(site: Path) -> None:
    _distribution(
        site,
        "exiting-plugin",
        "exiting_plugin",
        "import sys\nsys.exit(3)\n",
        "exiting_plugin:plugin",
    )
    with pytest.raises(PluginError) as info:
        discover()
    assert info.value.entry_point == "exiting_plugin"
    assert "SystemExit" in str(info.value)


def test_skip_broken_records_the_failure_and_keeps_the_rest(site: Path) -> None:
    _distribution(
        site, "broken-plugin", "broken_plugin", "import no_such_module_here\n", "broken_plugin:p"
    )
    discovery = discover(skip_broken=True)
    [failure] = discovery.failures
    assert failure.plugin.distribution == "broken-plugin"
    assert "no_such_module_here" in failure.error
    assert _patterns(discovery.registry) >= EXAMPLE_PATTERNS
    assert "broken-plugin" in {f.distribution for f in discovery.found}


def test_missing_attribute(site: Path) -> None:
    _distribution(site, "typo-plugin", "typo_plugin", "plugin = None\n", "typo_plugin:plugn")
    with pytest.raises(PluginError, match="AttributeError") as info:
        discover()
    assert info.value.distribution == "typo-plugin"


def test_entry_point_that_is_not_a_plugin(site: Path) -> None:
    _distribution(site, "odd-plugin", "odd_plugin", "plugin = 42\n", "odd_plugin:plugin")
    with pytest.raises(PluginError, match=r"is a int, not a workfleet\.Plugin") as info:
        discover()
    assert (info.value.distribution, info.value.entry_point) == ("odd-plugin", "odd_plugin")


def test_plugin_without_executors(site: Path) -> None:
    source = "import workfleet\nplugin = workfleet.Plugin('empty')\n"
    _distribution(site, "empty-plugin", "empty_plugin", source, "empty_plugin:plugin")
    with pytest.raises(PluginError, match="registers no executors"):
        discover()


def test_load_one_found_plugin() -> None:
    plugin = load_plugin(
        FoundPlugin("workfleet-examples", "media", "workfleet_examples.media:plugin")
    )
    assert [str(e.pattern) for e in plugin.executors] == ["media.video.v1"]


# --- register ---------------------------------------------------------------------------------


def test_duplicate_type_across_plugins_names_both() -> None:
    a, b = Plugin("a"), Plugin("b")

    @a.executor("same.v1")
    async def first(run: Any) -> None: ...

    @b.executor("same.v1")
    async def second(run: Any) -> None: ...

    with pytest.raises(PluginError, match=r"'a'.*'b'") as info:
        ExecutorRegistry.from_plugins([a, b])
    assert "first" in str(info.value) and "second" in str(info.value)


def test_installed_plugin_clashing_with_an_extra_one(site: Path) -> None:
    source = (
        "import workfleet\n"
        "plugin = workfleet.Plugin('thumbs')\n"
        "@plugin.executor('content.thumbnail.v1')\n"
        "async def thumbnail(run):\n"
        "    return None\n"
    )
    _distribution(site, "thumbs-plugin", "thumbs_plugin", source, "thumbs_plugin:plugin")
    with pytest.raises(PluginError, match=r"content\.thumbnail\.v1") as info:
        discover()
    assert "'content'" in str(info.value) and "'thumbs'" in str(info.value)


def test_duplicate_type_in_one_plugin_is_an_error() -> None:
    p = Plugin("p")
    p.executor("x.v1")(lambda run: None)
    with pytest.raises(ValueError, match="twice"):
        p.executor("x.v1")(lambda run: None)


def test_same_prefix_and_exact_type_may_coexist() -> None:
    a, b = Plugin("a"), Plugin("b")
    a.executor("n.%")(lambda run: None)
    b.executor("n.email.v1")(lambda run: None)
    assert len(ExecutorRegistry.from_plugins([a, b])) == 2


def test_resolve_prefers_exact_then_longest_prefix() -> None:
    p = Plugin("p")
    p.executor("n.%")(lambda run: "generic")
    p.executor("n.email.%")(lambda run: "email")
    p.executor("n.email.v9")(lambda run: "exact")
    registry = ExecutorRegistry.from_plugins([p])

    def pick(t: str) -> object:
        spec = registry.resolve(t)
        return None if spec is None else spec.fn(None)

    assert [pick(t) for t in ("n.email.v9", "n.email.v1", "n.sms.v1", "n.", "x.v1", "n")] == [
        "exact",
        "email",
        "generic",
        "generic",
        None,
        None,
    ]
    spec = registry.resolve("n.sms.v1")
    assert spec is not None and spec.pattern == TypePattern.parse("n.%")


def test_resolve_sees_executors_added_later() -> None:
    p, q = Plugin("p"), Plugin("q")
    p.executor("n.%")(lambda run: "generic")
    registry = ExecutorRegistry.from_plugins([p])
    assert registry.resolve("n.email.v1") is not None
    assert registry.resolve("m.v1") is None
    q.executor("n.email.v1")(lambda run: "exact")
    q.executor("m.v1")(lambda run: "m")
    for spec in q.executors:
        registry.add(spec)
    resolved = registry.resolve("n.email.v1")
    assert resolved is not None and resolved.plugin == "q"
    assert registry.resolve("m.v1") is not None, "an earlier miss is not remembered"


# --- the decorator ----------------------------------------------------------------------------


def test_executor_options_are_validated() -> None:
    p = Plugin("p")
    with pytest.raises(ValueError, match="timeout"):
        p.executor("x.v1", timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        p.executor("x.v1", max_attempts=0)
    with pytest.raises(ValueError, match="pattern"):
        p.executor("")
    with pytest.raises(ValueError, match="name"):
        Plugin("")


def test_plugin_policies_are_defaults_for_its_executors() -> None:
    p = Plugin("p", timeout=10, max_attempts=4)

    @p.executor("a.v1")
    async def inherits(run: Any) -> None:
        """Does a thing.

        At length."""

    @p.executor("b.v1", timeout=99, max_attempts=1, description="explicit")
    def overrides(run: Any) -> None: ...

    a, b = p.executors
    assert (a.timeout, a.max_attempts, a.is_async, a.description) == (10, 4, True, "Does a thing.")
    assert (b.timeout, b.max_attempts, b.is_async, b.description) == (99, 1, False, "explicit")
    assert a.qualname.endswith("inherits") and a.plugin == "p"

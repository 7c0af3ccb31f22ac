"""Plugin discovery: find → load → validate → register, with errors naming the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from workfleet import Plugin
from workfleet.errors import PluginError
from workfleet.patterns import TypePattern
from workfleet.plugins import ExecutorRegistry, discover, find_plugins


def _distribution(root: Path, name: str, module: str, source: str, target: str) -> None:
    (root / f"{module}.py").write_text(source)
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[workfleet.plugins]\n{module} = {target}\n")


def test_examples_are_discovered() -> None:
    discovery = discover()
    patterns = {str(p) for p in discovery.registry.patterns}
    assert {
        "content.thumbnail.v1",
        "billing.invoice.v1",
        "billing.payment.v1",
        "media.video.v1",
        "notify.%",
    } <= patterns
    assert [f.distribution for f in find_plugins()].count("workfleet-examples") == 4


def test_import_error_names_distribution_and_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _distribution(
        tmp_path,
        "broken-plugin",
        "broken_plugin",
        "raise ImportError('missing dependency: libfoo')\n",
        "broken_plugin:plugin",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as info:
        discover()
    assert info.value.distribution == "broken-plugin"
    assert info.value.entry_point == "broken_plugin"
    assert "broken-plugin" in str(info.value) and "libfoo" in str(info.value)

    skipped = discover(skip_broken=True)
    assert [f.plugin.distribution for f in skipped.failures] == ["broken-plugin"]
    assert "media.video.v1" in {str(p) for p in skipped.registry.patterns}


def test_entry_point_that_is_not_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _distribution(tmp_path, "odd-plugin", "odd_plugin", "plugin = 42\n", "odd_plugin:plugin")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"not a workfleet\.Plugin"):
        discover()


def test_duplicate_type_across_plugins_is_an_error() -> None:
    a, b = Plugin("a"), Plugin("b")

    @a.executor("same.v1")
    async def first(run: object) -> None: ...

    @b.executor("same.v1")
    async def second(run: object) -> None: ...

    with pytest.raises(PluginError, match=r"'a'.*'b'"):
        ExecutorRegistry.from_plugins([a, b])


def test_duplicate_type_in_one_plugin_is_an_error() -> None:
    p = Plugin("p")
    p.executor("x.v1")(lambda run: None)
    with pytest.raises(ValueError, match="twice"):
        p.executor("x.v1")(lambda run: None)


def test_resolve_prefers_exact_then_longest_prefix() -> None:
    p = Plugin("p")
    p.executor("n.%")(lambda run: "generic")
    p.executor("n.email.%")(lambda run: "email")
    p.executor("n.email.v9")(lambda run: "exact")
    registry = ExecutorRegistry.from_plugins([p])

    def pick(t: str) -> object:
        spec = registry.resolve(t)
        return None if spec is None else spec.fn(None)

    assert [pick(t) for t in ("n.email.v9", "n.email.v1", "n.sms.v1", "x.v1")] == [
        "exact",
        "email",
        "generic",
        None,
    ]
    assert registry.resolve("n.sms.v1").pattern == TypePattern.parse("n.%")  # type: ignore[union-attr]


def test_executor_options_are_validated() -> None:
    p = Plugin("p")
    with pytest.raises(ValueError, match="timeout"):
        p.executor("x.v1", timeout=0)
    with pytest.raises(ValueError, match="max_attempts"):
        p.executor("x.v1", max_attempts=0)

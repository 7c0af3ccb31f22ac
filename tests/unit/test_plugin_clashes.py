"""Two installed plugins claiming one type: the error names both distributions and entry
points and says how to fix it; ``workfleet plugins`` still lists what loaded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workfleet import Plugin
from workfleet.cli.main import main
from workfleet.discovery import discover
from workfleet.errors import PluginError

# the getting-started example of docs/plugins.md, installed beside the example plugins
CLASHING = (
    "import workfleet\n"
    "plugin = workfleet.Plugin('billing')\n"
    "@plugin.executor('billing.invoice.v1')\n"
    "async def invoice(run):\n"
    "    return None\n"
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_billing.py").write_text(CLASHING)
    info = tmp_path / "my_billing-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-billing\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[workfleet.plugins]\nbilling = my_billing:plugin\n")
    yield tmp_path
    sys.modules.pop("my_billing", None)


def test_the_clash_names_both_distributions_entry_points_and_the_fix(site: Path) -> None:
    with pytest.raises(PluginError) as info:
        discover()
    message = str(info.value)
    assert "'billing.invoice.v1' is claimed twice" in message
    assert "distribution 'workfleet-examples'" in message
    assert "distribution 'my-billing'" in message
    assert "workfleet_examples.billing:plugin" in message and "my_billing:plugin" in message
    assert "rename one of the types" in message
    assert "(pip uninstall my-billing or pip uninstall workfleet-examples)" in message
    # the error is the plugin found second's (metadata order: my-billing sorts first)
    assert (info.value.distribution, info.value.entry_point) == ("workfleet-examples", "billing")


def test_plugins_lists_what_loaded_and_the_clash(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("workfleet.cli.options.configure_logging", lambda *a: None)
    assert main(["plugins", "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    patterns = {row["pattern"]: row["function"] for row in document["executors"]}
    assert patterns["billing.invoice.v1"] == "my_billing.invoice", "the first one found"
    assert {"media.video.v1", "notify.%", "content.thumbnail.v1"} <= set(patterns)
    [error] = document["errors"]
    assert (error["distribution"], error["entry_point"]) == ("workfleet-examples", "billing")
    assert "claimed twice" in error["error"]


def test_the_docs_example_does_not_collide_with_the_example_plugins() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text("utf-8")
    source = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(source, "docs/plugins.md", "exec"), namespace)  # noqa: S102 - our own docs
    plugin = namespace["plugin"]
    assert isinstance(plugin, Plugin)
    installed = discover()
    taken = {str(p) for p in installed.registry.patterns}
    assert not {str(e.pattern) for e in plugin.executors} & taken
    assert plugin.name not in {p.name for p in installed.plugins}
    # and it registers beside them, as a newcomer's first plugin will
    installed.registry.add_plugin(plugin)

"""The image definitions: hadolint-clean, non-root, exec-form entrypoint, SIGTERM to stop."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "Dockerfile", ROOT / "plugins" / "workfleet-examples" / "Dockerfile"]
HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_has_nothing_to_say(dockerfile: Path) -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_image_contract() -> None:
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text.split("\nFROM ")[-1]
    assert re.search(r"^USER 10001:10001$", final_stage, re.MULTILINE), "numeric non-root user"
    assert 'ENTRYPOINT ["workfleet"]' in final_stage
    assert 'CMD ["worker"]' in final_stage
    assert "STOPSIGNAL SIGTERM" in final_stage
    assert "gcc" not in final_stage and "build-essential" not in final_stage
    assert "HOME=/tmp" in final_stage, "writable paths only under /tmp (read-only root FS)"
    assert ".git" in (ROOT / ".dockerignore").read_text().split()


def _final_stage(path: Path) -> str:
    return path.read_text().split("\nFROM ")[-1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_layer_keeps_what_a_later_step_deletes(dockerfile: Path) -> None:
    """Installed through bind mounts: a ``COPY`` then ``rm`` would ship the copy in a dead layer."""
    final = _final_stage(dockerfile)
    assert "COPY" not in final, "the final stage copies nothing it later deletes"
    assert "rm -rf" not in final
    assert "RUN --mount=type=bind," in final


def _requirement_names(specs: list[str]) -> set[str]:
    return {
        re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs
    }


def test_the_lock_pins_every_runtime_dependency_and_the_image_installs_it() -> None:
    """``make lock`` output: one ``==`` pin per line, covering the runtime and embedded deps."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [
        line
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.!+_-]+", pin) for pin in pins), pins
    wanted = _requirement_names(
        project["dependencies"] + project["optional-dependencies"]["embedded"]
    )
    assert wanted <= _requirement_names(pins), "requirements.lock is stale: run make lock"
    root = (ROOT / "Dockerfile").read_text()
    assert "--constraint requirements.lock" in root.split("\nFROM ")[1], "the wheels are pinned"
    assert "--no-index" in _final_stage(ROOT / "Dockerfile"), "only those wheels are installed"
    assert "-c $(LOCK)" in (ROOT / "Makefile").read_text(), "make run uses the same pins"


def test_plugin_build_context_is_filtered() -> None:
    ignore = (ROOT / "plugins" / "workfleet-examples" / ".dockerignore").read_text().split()
    assert {"**/__pycache__", "*.egg-info", "build", "dist"} <= set(ignore)

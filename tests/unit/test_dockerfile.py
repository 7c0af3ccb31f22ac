"""The image definitions: hadolint-clean, non-root, exec-form entrypoint, SIGTERM to stop."""

from __future__ import annotations

import re
import subprocess
import sys
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

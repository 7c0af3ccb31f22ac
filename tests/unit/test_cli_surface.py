"""The CLI's surface: ``--json`` on every command that prints a result, and a shell
completion script made from the parser that completes commands, options and their values."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from workfleet.cli.completion import script
from workfleet.cli.main import build_parser

# long-running commands whose output is their log (--log-format json), and the script printer
# (`workfleet api --hash-key` prints only the hash)
NO_RESULT = {"worker", "dev", "api", "completion"}


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                full = f"{path} {name}".strip()
                children = _commands(child, full)
                out.update(children or {full: child})
    return out


def test_every_command_that_prints_a_result_takes_json() -> None:
    commands = _commands(build_parser())
    assert {"runs", "status", "inspect", "enqueue", "schedule add", "check"} <= set(commands)
    missing = [
        name
        for name, p in commands.items()
        if name not in NO_RESULT and not any("--json" in a.option_strings for a in p._actions)
    ]
    assert missing == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["workfleet", "ru"], {"runs"}),
        (["workfleet", "runs", "--sta"], {"--status"}),
        (["workfleet", "runs", "--status", "fa"], {"failed"}),
        (["workfleet", "schedule", "pa"], {"pause"}),
        (["workfleet", "inspect", "0f0e", "--js"], {"--json"}),
    ],
)
def test_bash_completion_completes_commands_options_and_values(
    words: list[str], expected: set[str]
) -> None:
    text = script(build_parser(), "bash")
    quoted = " ".join(f"'{w}'" for w in words)
    probe = (
        f"{text}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; "
        'COMPREPLY=(); _workfleet; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert set(result.stdout.split()) == expected


def test_zsh_script_loads_bash_completion_first() -> None:
    assert script(build_parser(), "zsh").startswith("autoload -U +X bashcompinit")


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_run_passes_flags_to_workfleet_dev() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(
        ["make", "-n", "-s", "-o", ".venv/.installed", "run", "ARGS=--no-demo --reload"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    [command] = [line for line in result.stdout.splitlines() if "workfleet dev" in line]
    assert command.endswith("workfleet dev --no-demo --reload")

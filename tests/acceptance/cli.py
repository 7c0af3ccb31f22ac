"""Drive the real ``workfleet`` executable as a subprocess, reading its output as it runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

WORKFLEET = str(Path(sys.executable).with_name("workfleet"))


def cli_env(dsn: str, schema: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLEET_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "WORKFLEET_DATABASE_URL": dsn,
            "WORKFLEET_SCHEMA": schema,
            "WORKFLEET_LOG_FORMAT": "json",
            "WORKFLEET_HTTP_PORT": "0",
        }
    )
    env.update(extra)
    return env


async def run_cli(*args: str, env: Mapping[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """Run one command to completion; return (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        WORKFLEET,
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


class Process:
    """A long-running command whose combined output is collected line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line containing {text!r}; output:\n{self.output[-4000:]}")

    async def terminate(self, timeout: float = 60.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reader
        return code


@contextlib.asynccontextmanager
async def started(*args: str, env: Mapping[str, str]) -> AsyncIterator[Process]:
    proc = await asyncio.create_subprocess_exec(
        WORKFLEET,
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    process = Process(proc)
    try:
        yield process
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

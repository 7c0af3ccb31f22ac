"""The real ``workfleet api`` as a subprocess on a free port, over a freshly migrated schema of
the session database: for the property tests and the browser tests."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.api.conftest import ADMIN_KEY, READ_KEY
from workfleet.api.auth import digest

WORKFLEET = str(Path(sys.executable).with_name("workfleet"))


@dataclass(frozen=True)
class Served:
    url: str
    dsn: str
    schema: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_api(dsn: str, log: Path | None = None, **env_extra: str) -> Iterator[Served]:
    """Migrate a new schema, start ``workfleet api`` on it, wait for /health; stop it after."""
    schema = f"wf_api_{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKFLEET_")}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "WORKFLEET_DATABASE_URL": dsn,
            "WORKFLEET_SCHEMA": schema,
            "WORKFLEET_LOG_FORMAT": "json",
            "WORKFLEET_API__PORT": str(port),
            "WORKFLEET_API__HOST": "127.0.0.1",
            "WORKFLEET_API__KEYS": f"ops:admin:{digest(ADMIN_KEY)},viewer:read:{digest(READ_KEY)}",
            "WORKFLEET_API__MAX_BODY_BYTES": "65536",
            **env_extra,
        }
    )
    subprocess.run([WORKFLEET, "migrate"], env=env, check=True, capture_output=True, timeout=120)
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([WORKFLEET, "api"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"workfleet api did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield Served(url, dsn, schema)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log and out is not subprocess.DEVNULL:
            out.close()  # type: ignore[union-attr]

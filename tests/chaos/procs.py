"""Worker processes for the chaos scenarios: start, SIGKILL, SIGSTOP/SIGCONT, SIGTERM, replace."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET a worker's probe or metrics endpoint: (status, body)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
            return int(response.status), body.decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def worker_env(dsn: str, schema: str, worker_id: str, **extra: str) -> dict[str, str]:
    """The environment of one chaos worker process (short leases, fast sweep, no HTTP)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLEET_", "CHAOS_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "WORKFLEET_DATABASE_URL": dsn,
            "WORKFLEET_SCHEMA": schema,
            "WORKFLEET_WORKER_ID": worker_id,
            "WORKFLEET_LOG_FORMAT": "json",
            "WORKFLEET_LOG_LEVEL": "WARNING",
            "WORKFLEET_HTTP_ENABLED": "false",
            "WORKFLEET_LEASE_SECONDS": "2",
            "WORKFLEET_SWEEP_INTERVAL": "0.5",
            "WORKFLEET_POLL_INTERVAL": "1",
            "WORKFLEET_DRAIN_TIMEOUT": "5",
            "WORKFLEET_CANCEL_GRACE": "0.5",
            "WORKFLEET_CONNECT_TIMEOUT": "3",
            "WORKFLEET_SCHEDULES_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
    )
    env.update(extra)
    return env


class WorkerProcess:
    """One ``python -m tests.chaos.worker_main`` process; its stderr goes to a log file."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.worker_id = env["WORKFLEET_WORKER_ID"]
        self.log_path = log_dir / f"{self.worker_id}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.worker_main"],
            cwd=ROOT,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        if self.alive:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no drain, no release, leases left to expire."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self, force: bool = False) -> None:
        """Make sure the process is gone (SIGKILL at once with ``force``, or when it does not
        stop in time)."""
        if self.alive and force:
            self.proc.kill()
            self.proc.wait(10)
        if self.alive:
            try:
                self.terminate(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def wait_until(predicate: object, timeout: float, every: float = 0.05) -> None:
    """Synchronous wait for a callable to return truthy (for signal-timing helpers)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(every)

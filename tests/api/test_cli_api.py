"""``workfleet api`` as an operator runs it: ``--hash-key``, refusing to start without keys, and
serving on the configured port until SIGTERM."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ADMIN_KEY
from tests.api.served import WORKFLEET, serve_api
from workfleet.api.auth import digest

pytestmark = [pytest.mark.postgres, pytest.mark.acceptance]


def test_hash_key_prints_the_digest_to_configure() -> None:
    done = subprocess.run(
        [WORKFLEET, "api", "--hash-key"],
        input="s3cret\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == digest("s3cret")


def test_without_keys_it_refuses_to_start(pg_dsn: str) -> None:
    env = {"WORKFLEET_DATABASE_URL": pg_dsn, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [WORKFLEET, "api"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "WORKFLEET_API__KEYS" in done.stderr


def test_it_serves_until_stopped_and_logs_no_secrets(pg_dsn: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    with serve_api(pg_dsn, log=log) as api:
        created = httpx.post(
            f"{api.url}/api/v1/workflows",
            json={"type": "cli.v1", "payload": {"card": "4111"}},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert created.status_code == 201
        assert httpx.get(f"{api.url}/api/v1/workflows", timeout=5).status_code == 401
    text = log.read_text()
    assert '"route": "/api/v1/workflows"' in text and '"key": "ops"' in text
    for secret in ("4111", ADMIN_KEY, "postgres@", pg_dsn):
        assert secret not in text

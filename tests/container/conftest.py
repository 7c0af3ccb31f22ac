"""The container suite's fixtures: the built images, podman, and a fresh database per run.

The suite runs only under ``make image-test`` (which builds the images and sets
``WORKFLEET_CONTAINER_TESTS=1``), so ``make test`` stays fast and needs no container engine.
Containers share the host network and reach the PostgreSQL of ``WORKFLEET_TEST_DATABASE_URL``
over TCP; each run creates its own database there and drops it at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import sql

from tests.container.images import Engine, image_names

ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = ROOT / "helm" / "workfleet" / "values.yaml"
ENABLED = os.environ.get("WORKFLEET_CONTAINER_TESTS") == "1"

# Figures printed at the end of the run (start-to-ready, stop time, sizes).
FIGURES: dict[str, str] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    skip = pytest.mark.skip(reason="container suite: run it with make image-test")
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.container)
            if not ENABLED:
                item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("container figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")


@dataclass(frozen=True)
class Images:
    workfleet: str
    examples: str


@pytest.fixture(scope="session")
def engine() -> Engine:
    if not shutil.which("podman"):
        pytest.fail("the container suite needs podman (make image-test)")
    return Engine("podman")


@pytest.fixture(scope="session")
def images(engine: Engine) -> Images:
    workfleet, examples = image_names(engine)
    for ref in (workfleet, examples):
        if not engine.image_exists(ref):
            pytest.fail(f"{ref} is not built: run make image-test")
    return Images(workfleet, examples)


def chart_security_flags() -> list[str]:
    """``podman run`` flags equal to the Helm chart's pod and container security contexts."""
    values = yaml.safe_load(CHART_VALUES.read_text())
    pod, ctr = values["podSecurityContext"], values["securityContext"]
    flags = ["--user", f"{pod['runAsUser']}:{pod['runAsGroup']}"]
    if ctr.get("readOnlyRootFilesystem"):
        flags.append("--read-only")
    if ctr.get("allowPrivilegeEscalation") is False:
        flags += ["--security-opt", "no-new-privileges"]
    for cap in ctr.get("capabilities", {}).get("drop", []):
        flags += ["--cap-drop", cap]
    # the chart's emptyDir at /tmp (HOME=/tmp), with its size limit
    size = str(values["tmpSizeLimit"]).removesuffix("i").lower()
    flags += ["--tmpfs", f"/tmp:rw,size={size}"]  # noqa: S108 - a private tmpfs, not a host path
    return flags


@dataclass(frozen=True)
class Database:
    """A database created for this run on the host's server."""

    conninfo: str  # for the tests (psycopg on the host)
    url: str  # for the containers: no password in it
    password: str  # what the containers get through a secret only
    schema: str

    @property
    def url_with_password(self) -> str:
        user, rest = self.url.removeprefix("postgresql://").split("@", 1)
        return f"postgresql://{user}:{self.password}@{rest}"


@pytest.fixture(scope="session")
def database(pg_server_dsn: str) -> Iterator[Database]:
    params = psycopg.conninfo.conninfo_to_dict(pg_server_dsn)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        pytest.fail(
            "the container suite needs PostgreSQL over TCP: set WORKFLEET_TEST_DATABASE_URL"
        )
    name = f"workfleet_image_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    user = str(params.get("user") or "postgres")
    # a server that trusts local connections never asks for it; one that does gets the real one
    password = str(params.get("password") or f"pw-{secrets.token_hex(12)}")
    port = str(params.get("port") or 5432)
    schema = "wf_image"
    try:
        yield Database(
            conninfo=psycopg.conninfo.make_conninfo(pg_server_dsn, dbname=name),
            url=f"postgresql://{user}@{host}:{port}/{name}?schema={schema}",
            password=password,
            schema=schema,
        )
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def pgpass_secret(engine: Engine, database: Database) -> Iterator[str]:
    """A podman secret holding a libpq password file for :attr:`Database.password`."""
    name = f"workfleet-test-{uuid.uuid4().hex[:8]}"
    engine.run("secret", "create", name, "-", stdin=f"*:*:*:*:{database.password}\n".encode())
    try:
        yield name
    finally:
        engine.run("secret", "rm", name, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""The examples image as a fleet runs it: locked down exactly as the Helm chart does, against real
PostgreSQL on the host network.

One worker container serves the module in order: migrate and check, start to ready, probes,
runs of every example family succeed, the security context holds inside the process, no
secret shows in ``podman inspect`` or the logs, and ``podman stop`` with runs in flight exits 0
within the drain timeout with nothing lost and every lease released.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql

from tests.container.conftest import FIGURES, Database, Images, chart_security_flags, free_port
from tests.container.images import Engine, version

DRAIN_TIMEOUT = 4.0
# stays in flight past any drain: released by the stop, never finished
LONG_VIDEO: dict[str, object] = {
    "video_id": "long",
    "operations": ["transcode"],
    "seconds_per_operation": 600,
}
# finishes within the drain timeout
SHORT_VIDEO: dict[str, object] = {
    "video_id": "short",
    "operations": ["transcode"],
    "seconds_per_operation": 1.5,
}
QUICK_RUNS: list[tuple[str, dict[str, object]]] = [
    ("content.thumbnail.v1", {"content_id": "c-1", "width": 64, "height": 64}),
    ("billing.invoice.v1", {"invoice_id": "INV-1", "amount": 150.0, "customer_id": "CUST-1"}),
    ("notify.email.v1", {"to": "ops@example.com", "subject": "hello"}),
    ("notify.sms.v1", {"phone": "+100000", "message": "hi"}),
    ("media.video.v1", {"video_id": "v-1", "operations": ["upload"], "seconds_per_operation": 0}),
]


@dataclass
class Worker:
    name: str
    port: int
    started: float


def _secret_flags(pgpass_secret: str) -> list[str]:
    # The password reaches libpq as a file on the /tmp volume: podman 4.3 shows an env-type
    # secret's value in `podman inspect`, a mounted one it does not.
    return [
        "--secret",
        f"{pgpass_secret},type=mount,uid=10001,gid=10001,mode=0400,target=/tmp/.pgpass",
        "--env",
        "PGPASSFILE=/tmp/.pgpass",
    ]


def _cli(
    engine: Engine, image: str, database: Database, pgpass_secret: str, *args: str
) -> tuple[int, str]:
    done = engine.run(
        "run",
        "--rm",
        "--network",
        "host",
        *chart_security_flags(),
        *_secret_flags(pgpass_secret),
        "--env",
        f"WORKFLEET_DATABASE_URL={database.url}",
        image,
        *args,
        check=False,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def _wait(what: str, predicate: object, timeout: float = 60.0) -> float:
    """Poll ``predicate()`` until true; return the seconds it took."""
    assert callable(predicate)
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def _enqueue(database: Database, runs: list[tuple[str, dict[str, object]]]) -> list[uuid.UUID]:
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(database.schema)))
        ids = []
        for type_, payload in runs:
            row = conn.execute(
                "INSERT INTO workflow_run (type, payload) VALUES (%s, %s) RETURNING id",
                (type_, json.dumps(payload)),
            ).fetchone()
            assert row is not None
            ids.append(row[0])
        return ids


def _rows(database: Database, ids: list[uuid.UUID]) -> list[tuple[object, ...]]:
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(database.schema)))
        return conn.execute(
            "SELECT id, status, attempt, leased_by, lease_until FROM workflow_run"
            " WHERE id = ANY(%s) ORDER BY created_at",
            (ids,),
        ).fetchall()


def _statuses(database: Database, ids: list[uuid.UUID]) -> list[object]:
    return [row[1] for row in _rows(database, ids)]


@pytest.fixture(scope="module")
def migrated(engine: Engine, images: Images, database: Database, pgpass_secret: str) -> None:
    code, out = _cli(engine, images.examples, database, pgpass_secret, "migrate")
    assert code == 0, out
    code, out = _cli(engine, images.examples, database, pgpass_secret, "check")
    assert code == 0, out


@pytest.fixture(scope="module")
def worker(
    engine: Engine, images: Images, database: Database, pgpass_secret: str, migrated: None
) -> Iterator[Worker]:
    name = f"workfleet-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    started = time.monotonic()
    engine.run(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        *chart_security_flags(),
        *_secret_flags(pgpass_secret),
        "--env",
        f"WORKFLEET_DATABASE_URL={database.url}",
        "--env",
        f"WORKFLEET_HTTP_PORT={port}",
        "--env",
        f"WORKFLEET_DRAIN_TIMEOUT={DRAIN_TIMEOUT}",
        "--env",
        f"WORKFLEET_WORKER_ID={name}",
        images.examples,
        "worker",
    )
    try:
        yield Worker(name, port, started)
    finally:
        logs = engine.run("logs", name, check=False).stderr
        engine.run("rm", "--force", name, check=False)
        print(logs[-4000:])


def test_worker_becomes_ready_and_serves_its_probes(worker: Worker) -> None:
    _wait("/readyz 200", lambda: _get(worker.port, "/readyz")[0] == 200)
    FIGURES["container start to /readyz 200"] = f"{time.monotonic() - worker.started:.2f} s"
    for path in ("/livez", "/startupz", "/readyz"):
        assert _get(worker.port, path)[0] == 200, path
    status, metrics = _get(worker.port, "/metrics")
    assert status == 200
    assert f'workfleet_build_info{{version="{version()}"}} 1.0' in metrics


def test_runs_of_every_example_family_succeed(worker: Worker, database: Database) -> None:
    _wait("/readyz 200", lambda: _get(worker.port, "/readyz")[0] == 200)
    ids = _enqueue(database, QUICK_RUNS)
    _wait("every run succeeded", lambda: set(_statuses(database, ids)) == {"succeeded"})
    metrics = _get(worker.port, "/metrics")[1]
    finished = [
        line
        for line in metrics.splitlines()
        if line.startswith("workfleet_runs_finished_total{") and 'outcome="succeeded"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in finished) >= len(QUICK_RUNS)


def _proc_status(engine: Engine, name: str) -> dict[str, str]:
    out = engine.run("exec", name, "cat", "/proc/1/status").stdout
    return dict(line.split(":\t", 1) for line in out.splitlines() if ":\t" in line)


def test_security_context_holds_inside_the_worker(engine: Engine, worker: Worker) -> None:
    _wait("/readyz 200", lambda: _get(worker.port, "/readyz")[0] == 200)
    status = _proc_status(engine, worker.name)
    assert status["Uid"].split() == ["10001"] * 4
    assert status["Gid"].split() == ["10001"] * 4
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps].strip(), 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"].strip() == "1"
    probe = engine.run(
        "exec",
        worker.name,
        "python3",
        "-c",
        "import pathlib, sys\n"
        "pathlib.Path('/tmp/ok').write_text('x')\n"
        "for p in ('/usr/local/lib/x', '/x', '/etc/x'):\n"
        "    try:\n"
        "        pathlib.Path(p).write_text('x')\n"
        "    except OSError as e:\n"
        "        print(p, e.errno)\n"
        "    else:\n"
        "        sys.exit(p + ' is writable')\n",
        check=False,
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert [line.split()[1] for line in probe.stdout.splitlines()] == ["30"] * 3  # EROFS
    inspect = json.loads(engine.run("inspect", worker.name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert "no-new-privileges" in inspect["HostConfig"]["SecurityOpt"]


def test_no_secret_in_inspect_or_logs(engine: Engine, worker: Worker, database: Database) -> None:
    _wait("/readyz 200", lambda: _get(worker.port, "/readyz")[0] == 200)
    inspect = engine.run("inspect", worker.name).stdout
    logs = engine.run("logs", worker.name)
    assert database.password not in inspect
    assert database.password not in logs.stdout + logs.stderr
    assert logs.stdout + logs.stderr, "the worker logs something to check"


def test_cli_redacts_a_password_given_in_the_url(
    engine: Engine, images: Images, database: Database, migrated: None
) -> None:
    """Where a URL carries the password after all, the container's output never shows it."""
    for args in (["check", "--log-level", "DEBUG"], ["status"]):
        done = engine.run(
            "run",
            "--rm",
            "--network",
            "host",
            *chart_security_flags(),
            "--env",
            f"WORKFLEET_DATABASE_URL={database.url_with_password}",
            images.examples,
            *args,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout + done.stderr
        assert database.password not in done.stdout + done.stderr


def test_stop_with_runs_in_flight_drains_and_releases(
    engine: Engine, worker: Worker, database: Database
) -> None:
    _wait("/readyz 200", lambda: _get(worker.port, "/readyz")[0] == 200)
    short = _enqueue(database, [("media.video.v1", SHORT_VIDEO)] * 2)
    long = _enqueue(database, [("media.video.v1", LONG_VIDEO)] * 2)
    _wait("all four in flight", lambda: set(_statuses(database, short + long)) == {"leased"})
    started = time.monotonic()
    engine.run("stop", "--time", str(int(DRAIN_TIMEOUT) + 20), worker.name)
    took = time.monotonic() - started
    FIGURES["podman stop with 4 runs in flight"] = (
        f"{took:.2f} s (drain timeout {DRAIN_TIMEOUT:.0f} s)"
    )
    state = json.loads(engine.run("inspect", worker.name).stdout)[0]["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert took < DRAIN_TIMEOUT + 5
    # the short runs finished during the drain; the long ones went back to the queue as they
    # were: pending, no attempt used, no lease left
    assert [row[1:] for row in _rows(database, short)] == [("succeeded", 0, None, None)] * 2
    assert [row[1:] for row in _rows(database, long)] == [("pending", 0, None, None)] * 2
    with psycopg.connect(database.conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(database.schema)))
        leased = conn.execute("SELECT count(*) FROM workflow_run WHERE status = 'leased'")
        assert leased.fetchone() == (0,)

"""``workfleet dev``: a worker on an embedded PostgreSQL, migrated, with demo runs.

With no database URL configured it starts ``pgserver`` (a PostgreSQL build shipped as a Python
package) with its data under ``--data-dir``; with ``DATABASE_URL`` set it uses that database.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

from workfleet.cli.connect import Connected, connected
from workfleet.cli.connect import migrate as apply_migrations
from workfleet.cli.options import settings_from
from workfleet.cli.reload import child_argv, child_env, plugin_roots, supervise
from workfleet.discovery import ExecutorRegistry, discover, find_plugins
from workfleet.dsn import DEFAULT_SCHEMA
from workfleet.errors import ConfigError
from workfleet.models import Enqueued, NewRun

# Each demo run has an idempotency key: a restart of `workfleet dev` (or `make run`) finds them
# and enqueues nothing twice.
DEMO_RUNS = [
    NewRun(run.type, run.payload, idempotency_key=f"workfleet-dev-demo:{run.type}")
    for run in (
        NewRun("content.thumbnail.v1", {"content_id": "img123", "width": 300, "height": 200}),
        NewRun(
            "billing.invoice.v1",
            {"invoice_id": "INV-001", "amount": 150.00, "customer_id": "CUST-123"},
        ),
        NewRun(
            "billing.payment.v1",
            {"payment_id": "PAY-001", "amount": 15000.00, "method": "credit_card"},
        ),
        NewRun(
            "media.video.v1",
            {"video_id": "vid123", "operations": ["transcode", "thumbnail", "upload"]},
        ),
        NewRun(
            "notify.email.v1",
            {"to": "user@example.com", "subject": "Welcome!", "body": "Thanks for signing up"},
        ),
        NewRun("notify.sms.v1", {"phone": "+1234567890", "message": "Your code is 123456"}),
        NewRun(
            "notify.push.v1",
            {"user_id": "user123", "title": "New Message", "body": "You have a new message"},
        ),
        # durable workflows (workfleet_examples.workflows)
        NewRun(
            "shop.order.v1",
            {"customer_id": "CUST-123", "items": ["book", "lamp"], "total_price": 42.50},
        ),
        NewRun("etl.pipeline.v1", {"source": "s3://demo/events.csv", "rows": 20, "notify": "down"}),
        NewRun("orders.process.v1", {"order_id": "ORD-001", "amount": 1500}),
        NewRun("users.onboarding.v1", {"username": "alice", "email": "alice@example.com"}),
    )
]

# The order workflow waits for the warehouse; the demo plays the warehouse a few seconds later,
# so the run is seen waiting (pending, its slot given back) before the signal wakes it.
DEMO_SIGNAL_TYPE = "shop.order.v1"
DEMO_SIGNAL = "warehouse.ready"
DEMO_SIGNAL_PAYLOAD = {"available": True, "warehouse": "north"}
DEMO_SIGNAL_DELAY = 3.0


async def enqueue_demo(
    db: Connected, registry: ExecutorRegistry, *, signal_delay: float = DEMO_SIGNAL_DELAY
) -> list[Enqueued]:
    """Enqueue the demo runs whose types ``registry`` serves; after ``signal_delay`` seconds,
    send the order workflows their warehouse signal. The runs enqueued, in order."""
    runs = [r for r in DEMO_RUNS if registry.resolve(r.type)]
    done = await db.ops.enqueue_many(runs)
    new = sum(r.created for r in done)
    progress(
        f"enqueued {new} demo runs"
        if new
        else "demo runs enqueued at an earlier start; none added (--no-demo skips them)"
    )
    # on a restart the order is found again: its signal's idempotency key sends it once
    orders = [e.id for r, e in zip(runs, done, strict=True) if r.type == DEMO_SIGNAL_TYPE]
    if orders:
        await asyncio.sleep(signal_delay)
        for run_id in orders:
            # what a warehouse system in any language would do:
            #   INSERT INTO workflow_signal (run_id, name, payload) VALUES (...)
            sent = await db.ops.signal(run_id, DEMO_SIGNAL, DEMO_SIGNAL_PAYLOAD, f"demo:{run_id}")
            if sent.done and not sent.duplicate:
                progress(f"sent {DEMO_SIGNAL} to {DEMO_SIGNAL_TYPE} run {run_id}")
    return done


def progress(message: str) -> None:
    """One line of start-up progress on stderr (stdout stays for results)."""
    print(f"workfleet dev: {message}", file=sys.stderr, flush=True)


def portable_url(url: str, schema: str) -> str:
    """``url`` as psql and other languages' drivers take it: the schema as libpq's
    ``options=-csearch_path=...`` (which workfleet reads too), not workfleet's own
    ``?search_path=`` (which libpq refuses)."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{quote(schema, safe='')}"


def start_embedded(data_dir: str) -> str:
    """Start (or reuse) the embedded server under ``data_dir``; return its URL."""
    try:
        import pgserver
    except ImportError:
        raise ConfigError(
            "no database configured and the embedded server is not installed: set "
            "WORKFLEET_DATABASE_URL, or `pip install 'workfleet[embedded]'`",
            env_var="WORKFLEET_DATABASE_URL",
        ) from None
    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here
        warnings.simplefilter("ignore")
        server = pgserver.get_server(str(path), cleanup_mode="stop")
    return str(server.get_uri())


def banner(url: str, schema: str, http_port: int | None, embedded: bool) -> str:
    exe = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "workfleet"
    cmd = exe if exe == "workfleet" else "workfleet"
    quoted = shlex.quote(url)
    lines = [
        "",
        "workfleet dev is running" + (" on an embedded PostgreSQL" if embedded else ""),
        f"  database:  {url if embedded else '(from DATABASE_URL)'}",
        f"  schema:    {schema}",
    ]
    if http_port is not None:
        lines.append(
            f"  metrics:   http://127.0.0.1:{http_port}/metrics   "
            f"(probes: /livez /readyz /startupz)"
        )
    lines += [
        "",
        "In another terminal:",
        f"  export DATABASE_URL={quoted}" if embedded else "  (DATABASE_URL as set here)",
        f"  .venv/bin/{cmd} enqueue content.thumbnail.v1 "
        '\'{"content_id": "img456", "width": 640, "height": 480}\'',
        f"  .venv/bin/{cmd} status",
        f"  .venv/bin/{cmd} inspect <run id>",
        '  psql "$DATABASE_URL" -c "INSERT INTO workflow_signal '
        "(run_id, name, payload) VALUES ('<run id>', 'warehouse.ready', "
        '\'{\\"available\\": true}\')"',
        '  psql "$DATABASE_URL" -c "INSERT INTO workflow_run '
        '(type, payload) VALUES (\'notify.sms.v1\', \'{\\"phone\\": \\"+15550100\\", '
        '\\"message\\": \\"hi\\"}\')"',
        "",
        "Ctrl-C stops the worker gracefully.",
        "",
    ]
    return "\n".join(lines)


async def dev(args: argparse.Namespace) -> int:
    # the runtime is loaded only by the commands that run a worker (start-up of the others)
    from workfleet.runtime.worker import Worker, serve

    settings = settings_from(args)
    embedded = settings.database_url is None
    if embedded:
        progress(f"starting the embedded PostgreSQL in {args.data_dir} (first time: a few s)")
        url = await asyncio.to_thread(start_embedded, args.data_dir)
        schema = settings.db_schema or DEFAULT_SCHEMA
        url = portable_url(url, schema)
        settings = settings_from(args, database_url=url)
    else:
        url = settings.database_url.get_secret_value() if settings.database_url else ""
    if args.reload:
        roots = plugin_roots(find_plugins())
        return await supervise(
            child_argv(sys.argv[1:]), child_env(url if embedded else None), roots
        )
    schema = settings.resolved_dsn().schema
    progress(f"migrating schema {schema}")
    await apply_migrations(settings)
    progress("loading plugins")
    discovery = discover(skip_broken=True)
    for failure in discovery.failures:
        print(f"workfleet: warning: skipped plugin: {failure.error}", file=sys.stderr)
    if not len(discovery.registry):
        raise ConfigError(
            "no executors found: install plugins, e.g. `pip install -e plugins/workfleet-examples`"
        )
    background: set[asyncio.Task[Any]] = set()

    def started(worker: Worker) -> None:
        async def after_start() -> None:
            while not worker.health.started:  # noqa: ASYNC110 - the flag is set once, at start
                await asyncio.sleep(0.05)
            port = worker.http.port if worker.http else None
            print(banner(url, schema, port, embedded), file=sys.stderr, flush=True)
            if not args.no_demo:
                async with connected(settings) as db:
                    await enqueue_demo(db, discovery.registry)

        task = asyncio.create_task(after_start())
        background.add(task)
        task.add_done_callback(background.discard)

    progress("starting the worker")
    return await serve(settings, discovery, on_started=started)

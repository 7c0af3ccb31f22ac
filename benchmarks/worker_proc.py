"""One workfleet worker process for the benchmarks, built programmatically.

It is a real worker (``workfleet.runtime.worker.Worker`` on uvloop, default settings: HTTP
server, LISTEN connection, schedules, maintenance, INFO logs as JSON to stderr) with a no-op
plugin instead of discovered ones; only the prefixes (and, when asked, poll-only mode) differ
from the defaults. The HTTP server binds an ephemeral port so several processes can run. The
plugin also holds the workflows of W7-W9 (``bench.wf.*``, see ``benchmarks/workflows.py``).

Protocol: prints ``ready``, waits for ``go`` on stdin, runs until SIGTERM, then writes JSON to
``--out``: the wall-clock time the first executor started and, with ``--record-starts``, the
start time of every run by its payload's ``seq``.

    python -m benchmarks.worker_proc --database-url URL --schema S --prefix 'bench.%=100' --out F
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from workfleet import Plugin
from workfleet.cli.main import run_async
from workfleet.discovery import Discovery, ExecutorRegistry
from workfleet.observability.logging import configure_logging
from workfleet.runtime.worker import Worker
from workfleet.settings import load_settings
from workfleet.workflow import ChildSpec, Workflow

FIRST_START: list[float] = []
STARTS: dict[int, float] = {}
RECORD = False

plugin = Plugin("bench")


@plugin.executor("bench.noop.v1")
async def noop(run: Any) -> None:
    if not FIRST_START:
        FIRST_START.append(time.time())
    if RECORD:
        STARTS[int(run.payload["seq"])] = time.time()


def _first_start() -> None:
    if not FIRST_START:
        FIRST_START.append(time.time())


async def _noop_step() -> None:
    return None


async def _after_signal(seq: int) -> None:
    if RECORD:
        STARTS[seq] = time.time()


@plugin.workflow("bench.wf.steps.v1")
async def ten_steps(wf: Workflow[Any]) -> None:
    """W7: ten no-op steps, one after the other."""
    _first_start()
    for i in range(10):
        await wf.step(f"s{i}", _noop_step)


@plugin.workflow("bench.wf.signal.v1")
async def signalled(wf: Workflow[Any]) -> None:
    """W8: wait for the signal ``go``, then one step that records when it started."""
    _first_start()
    await wf.wait_signal("go", timeout=3600)
    await wf.step("after", _after_signal, int(wf.payload["seq"]))


@plugin.workflow("bench.wf.fan.v1")
async def fan(wf: Workflow[Any]) -> int:
    """W9: ``n`` no-op children started in one statement, then gathered."""
    _first_start()
    n = int(wf.payload["n"])
    handles = await wf.start_children(
        [ChildSpec("bench.noop.v1", {"seq": -1}) for _ in range(n)], key="fan"
    )
    results = await wf.gather(handles)
    return sum(r.ok for r in results)


# Four more families so an idle worker can be given four prefixes (W6).
for _family in ("a", "b", "c", "d"):

    @plugin.executor(f"bench.{_family}.v1")
    async def _family_noop(run: Any) -> None:
        return None


async def main(args: argparse.Namespace) -> int:
    global RECORD  # noqa: PLW0603 - one flag for the module-level executor
    RECORD = args.record_starts
    overrides: dict[str, Any] = {
        "database_url": args.database_url,
        "db_schema": args.schema,
        "prefixes": args.prefix,
        "http_port": 0,
    }
    if args.poll_only:
        overrides["poll_only"] = True
    if args.log_level:
        overrides["log_level"] = args.log_level
    if args.run_events:
        overrides["run_events"] = args.run_events
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    discovery = Discovery([], [plugin], ExecutorRegistry.from_plugins([plugin]), [])
    worker = Worker(settings, discovery)
    worker.install_signal_handlers()
    print("ready", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != "go":
        return 1
    cpu_before = time.process_time()
    code = await worker.run()
    result = {
        "cpu_seconds": time.process_time() - cpu_before,
        "first_start": FIRST_START[0] if FIRST_START else None,
        "starts": STARTS,
        "worker_id": settings.worker_id,
    }
    await asyncio.to_thread(Path(args.out).write_text, json.dumps(result), "utf-8")
    return code


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--database-url", required=True)
    p.add_argument("--schema", required=True)
    p.add_argument("--prefix", action="append", required=True)
    p.add_argument("--poll-only", action="store_true")
    p.add_argument("--record-starts", action="store_true")
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--run-events", choices=["all", "failures"])
    p.add_argument("--out", required=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(run_async(main(parse())))

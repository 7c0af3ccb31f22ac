"""``workfleet dev --reload``: run the worker in a child process and restart it when the code
of an installed plugin changes (graphile-worker's ``--watch``).

The files watched are the ``.py`` files of every plugin's top-level package, found from the
entry points' metadata (``pip install -e`` points them at the working copy), polled every half
second: no extra dependency, and a change shows within a second. A restart is a graceful stop
(SIGTERM: the child releases what it runs) followed by a fresh start, so the new code is loaded
by a new interpreter. A child that dies (a syntax error in the plugin) is restarted at the next
change. The embedded database, when used, belongs to this process and outlives the restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from workfleet.discovery import FoundPlugin

POLL_SECONDS = 0.5
STOP_GRACE = 10.0  # then a second SIGTERM (stop now), then SIGKILL


def plugin_roots(found: Iterable[FoundPlugin]) -> list[Path]:
    """The directories (or single files) holding each plugin's top-level package."""
    roots: set[Path] = set()
    for plugin in found:
        top = plugin.value.split(":", 1)[0].split(".", 1)[0].strip()
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.update(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin and spec.origin not in ("built-in", "frozen"):
            roots.add(Path(spec.origin))
    return sorted(roots)


def snapshot(roots: Iterable[Path]) -> dict[Path, int]:
    """Modification times of the ``.py`` files under ``roots``."""
    seen: dict[Path, int] = {}
    for root in roots:
        files = [root] if root.is_file() else root.rglob("*.py")
        for path in files:
            with contextlib.suppress(OSError):  # deleted while we looked
                seen[path] = path.stat().st_mtime_ns
    return seen


def changed(before: Mapping[Path, int], after: Mapping[Path, int]) -> list[Path]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _say(message: str) -> None:
    print(f"workfleet dev: {message}", file=sys.stderr, flush=True)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_GRACE)


async def supervise(argv: Sequence[str], env: Mapping[str, str], roots: Sequence[Path]) -> int:
    """Run ``workfleet <argv>`` and restart it whenever a file under ``roots`` changes; return
    its exit code once this process is asked to stop (SIGTERM or Ctrl-C)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    command = [sys.executable, "-c", "import sys; from workfleet.cli import main; sys.exit(main())"]
    _say(f"watching {', '.join(map(str, roots)) or 'nothing'} for changes")
    try:
        while True:
            proc = await asyncio.create_subprocess_exec(*command, *argv, env=dict(env))
            files = snapshot(roots)
            exited = asyncio.ensure_future(proc.wait())
            while True:
                await asyncio.wait({exited}, timeout=POLL_SECONDS)
                if stopping.is_set():
                    await _stop(proc)
                    return proc.returncode or 0
                now = snapshot(roots)
                diff = changed(files, now)
                if diff:
                    _say(f"{diff[0]} changed; restarting the worker")
                    await _stop(proc)
                    break
                if exited.done() and proc.returncode is not None:
                    _say(f"the worker exited ({proc.returncode}); it restarts at the next change")
                    files = now
                    while not stopping.is_set() and not changed(files, snapshot(roots)):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stopping.wait(), POLL_SECONDS)
                    if stopping.is_set():
                        return proc.returncode
                    break
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def child_argv(argv: Sequence[str]) -> list[str]:
    """The command line of the worker child: this one without ``--reload``."""
    return [a for a in argv if a != "--reload"]


def child_env(database_url: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if database_url is not None:
        env["WORKFLEET_DATABASE_URL"] = database_url
    return env

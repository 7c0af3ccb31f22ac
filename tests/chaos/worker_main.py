"""A worker process for the chaos scenarios: ``python -m tests.chaos.worker_main``.

It serves the chaos test plugin without any installed entry point. Settings come from the
``WORKFLEET_*`` environment as for ``workfleet worker``. ``CHAOS_CLOCK_SKEW_SECONDS`` shifts
this process's wall clock (``time.time``, ``time.time_ns``, ``datetime.now``/``utcnow``) by that
many seconds, the way ``faketime`` would, before anything else is imported: the runtime must not
care, because every time it acts on comes from the database.
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from typing import Any


def install_clock_skew(seconds: float) -> None:
    """Shift the wall clock of this process by ``seconds`` (monotonic clocks are untouched)."""
    real_time, real_time_ns = time.time, time.time_ns
    real_datetime = _dt.datetime
    delta = _dt.timedelta(seconds=seconds)

    def skewed_time() -> float:
        return real_time() + seconds

    def skewed_time_ns() -> int:
        return real_time_ns() + int(seconds * 1e9)

    class SkewedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real_datetime.now(tz) + delta

        @classmethod
        def utcnow(cls) -> Any:
            return real_datetime.now(_dt.UTC).replace(tzinfo=None) + delta

    time.time = skewed_time
    time.time_ns = skewed_time_ns
    _dt.datetime = SkewedDatetime  # type: ignore[misc]


def main() -> int:
    # as `workfleet worker` does first: a SIGTERM while starting is a graceful stop
    from workfleet.runtime.signals import hold_stop_signals

    hold_stop_signals()
    skew = float(os.environ.get("CHAOS_CLOCK_SKEW_SECONDS", "0") or 0)
    if skew:
        install_clock_skew(skew)
    # stands for slow imports (big plugins): the window a SIGTERM may fall into
    time.sleep(float(os.environ.get("CHAOS_START_DELAY_SECONDS", "0") or 0))

    from tests.chaos.plugin import plugin
    from tests.integration.worker_harness import discovery_of
    from workfleet.cli.main import _exit_past_stuck_threads, run_async
    from workfleet.observability.logging import configure_logging
    from workfleet.runtime.worker import Worker
    from workfleet.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    worker = Worker(settings, discovery_of(plugin))

    async def run() -> int:
        worker.install_signal_handlers()
        return await worker.run()

    # the event loop runner and exit path of `workfleet worker`, so the process behaves as the
    # CLI's does (uvloop; leave without executor threads that never return)
    code = run_async(run())
    print(f"chaos worker {settings.worker_id} skew={skew:g}s exit={code}", file=sys.stderr)
    sys.stderr.flush()
    _exit_past_stuck_threads(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

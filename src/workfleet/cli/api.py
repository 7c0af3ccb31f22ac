"""``workfleet api``: serve the REST API and the web console; ``--hash-key`` prints the SHA-256
of a key read from standard input (the form ``WORKFLEET_API__KEYS`` holds)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workfleet.cli.options import common, settings_from


def add_parser(sub: Any) -> None:
    help_ = "serve the REST API (/api/v1) and the web console (/ui)"
    p = sub.add_parser("api", help=help_, description=help_)
    common(p)
    p.add_argument("--host", help="listen address (WORKFLEET_API__HOST, default 0.0.0.0)")
    p.add_argument("--port", type=int, help="listen port (WORKFLEET_API__PORT, default 8080)")
    p.add_argument(
        "--hash-key",
        action="store_true",
        help="read a key on standard input, print its SHA-256 for WORKFLEET_API__KEYS, exit",
    )
    p.set_defaults(handler=api)


async def api(args: argparse.Namespace) -> int:
    if args.hash_key:
        from workfleet.api.auth import digest

        key = sys.stdin.readline().rstrip("\r\n")
        if not key:
            print("workfleet: no key on standard input", file=sys.stderr)
            return 2
        print(digest(key))
        return 0
    from workfleet.api.server import serve
    from workfleet.observability.logging import configure_logging

    settings = settings_from(args)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update={"api": settings.api.model_copy(update=overrides)})
    configure_logging(settings.log_format, settings.log_level)
    return await serve(settings)

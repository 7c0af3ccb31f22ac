"""What every ``workfleet`` command shares: its options, its settings, and its exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workfleet.dsn import redact, resolve_dsn
from workfleet.errors import ConfigError
from workfleet.observability.logging import configure_logging
from workfleet.settings import Settings, load_settings, unknown_variables

# Also in the package docstring and docs/cli.md.
EXIT = {
    "ok": 0,
    "failed": 1,
    "config": 2,
    "database": 3,
    "schema": 4,
    "plugin": 5,
}


def common(p: argparse.ArgumentParser) -> None:
    """The options of every command: where the database is, and how to log."""
    p.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (default: $WORKFLEET_DATABASE_URL or $DATABASE_URL)",
    )
    p.add_argument(
        "--schema",
        help="schema of the workflow tables (default: from the URL, "
        "else 'workflow'; env WORKFLEET_SCHEMA)",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="log format (env WORKFLEET_LOG_FORMAT; auto: console on a TTY)",
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env WORKFLEET_LOG_LEVEL)")


def worker_options(p: argparse.ArgumentParser) -> None:
    """The options of the commands that run a worker (``worker``, ``dev``)."""
    p.add_argument(
        "--prefix",
        action="append",
        metavar="PATTERN[=N]",
        help="a lease loop: type pattern and optional concurrency, e.g. "
        "'billing.%%=8'; repeatable (env WORKFLEET_PREFIXES='billing.%%=8,notify.%%')",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help="default concurrency per prefix (env WORKFLEET_CONCURRENCY, default 10)",
    )
    p.add_argument(
        "--poll-only",
        action="store_true",
        default=None,
        help="no LISTEN connection; poll only (for PgBouncer transaction pooling)",
    )
    p.add_argument(
        "--http-port",
        type=int,
        help="port of /metrics and probes (default 9464; 0 picks a free port)",
    )
    p.add_argument("--no-http", action="store_true", help="do not serve /metrics and probes")
    p.add_argument(
        "--skip-broken-plugins",
        action="store_true",
        default=None,
        help="start even if some plugins fail to import (they are reported)",
    )


# command-line option -> settings field
_FLAGS = {
    "database_url": "database_url",
    "schema": "db_schema",
    "log_format": "log_format",
    "log_level": "log_level",
    "prefix": "prefixes",
    "concurrency": "concurrency",
    "poll_only": "poll_only",
    "http_port": "http_port",
    "skip_broken_plugins": "skip_broken_plugins",
}


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Settings fields given on the command line (flags beat the environment)."""
    out = {
        field: getattr(args, arg)
        for arg, field in _FLAGS.items()
        if getattr(args, arg, None) is not None
    }
    if getattr(args, "no_http", False):
        out["http_enabled"] = False
    return out


def settings_from(args: argparse.Namespace, **extra: Any) -> Settings:
    """The command's settings (environment, then flags, then ``extra``), logging configured.

    Raises :class:`~workfleet.errors.ConfigError` naming the variable at fault.
    """
    given = {**overrides(args), **extra}
    # a bad value given as a flag is blamed on the flag, not on the environment variable
    flags = {field: "--" + arg.replace("_", "-") for arg, field in _FLAGS.items() if field in given}
    for warning in unknown_variables():
        print(f"workfleet: warning: {warning}", file=sys.stderr)
    settings = load_settings(flags, **given)
    if "database_url" in given:
        try:
            resolve_dsn(given["database_url"])
        except ValueError as exc:
            raise ConfigError(f"--database-url is invalid: {exc}", env_var=None) from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def fail(code: str, message: str) -> int:
    """Report a failure on stderr (passwords redacted); return the exit code named ``code``."""
    print(f"workfleet: error: {redact(message)}", file=sys.stderr)
    return EXIT[code]

"""DSN handling: schema parameters translated, never passed to libpq; passwords redacted."""

from __future__ import annotations

import pytest

from workfleet.dsn import redact, resolve_dsn


@pytest.mark.parametrize(
    ("url", "conninfo", "schema"),
    [
        (
            "postgres://pas:pwd@localhost/pas?search_path=workflow",
            "postgres://pas:pwd@localhost/pas",
            "workflow",
        ),
        (
            "postgresql://u@h/db?schema=jobs&sslmode=disable",
            "postgresql://u@h/db?sslmode=disable",
            "jobs",
        ),
        ("postgresql://u@h/db?search_path=a,public&schema=b", "postgresql://u@h/db", "a"),
        ("postgresql://u@h/db", "postgresql://u@h/db", "workflow"),
        ("host=h dbname=db search_path=tasks", "host=h dbname=db", "tasks"),
        ("host=h dbname=db", "host=h dbname=db", "workflow"),
    ],
)
def test_resolve(url: str, conninfo: str, schema: str) -> None:
    resolved = resolve_dsn(url)
    assert (resolved.conninfo, resolved.schema) == (conninfo, schema)


def test_bad_schema_name() -> None:
    with pytest.raises(ValueError, match="schema"):
        resolve_dsn("postgresql://u@h/db?schema=" + "x" * 64)


def test_redact() -> None:
    assert redact("postgresql://app:s3cret@db/app") == "postgresql://app:***@db/app"
    assert redact("host=db password=s3cret user=app") == "host=db password=*** user=app"
    assert redact("no secrets here") == "no secrets here"

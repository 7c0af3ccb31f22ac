"""DSN handling: schema parameters translated, never passed to libpq; passwords redacted."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from workfleet.dsn import DEFAULT_SCHEMA, redact, resolve_dsn


@pytest.mark.parametrize(
    ("url", "conninfo", "schema"),
    [
        # the seed's own DATABASE_URL
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
        ("postgresql://u@h/db?search_path=a,b", "postgresql://u@h/db", "a"),
        ("postgresql://u@h/db?search_path=a%2Cpublic", "postgresql://u@h/db", "a"),
        ("postgresql://u@h/db?search_path=%22Mixed%22,public", "postgresql://u@h/db", "Mixed"),
        ("postgresql://u@h/db?search_path=a,public&schema=b", "postgresql://u@h/db", "a"),
        ("postgresql://u@h/db?schema=b&search_path=a", "postgresql://u@h/db", "a"),
        ("postgresql://u@h/db", "postgresql://u@h/db", DEFAULT_SCHEMA),
        ("postgresql://u@h/db?schema=", "postgresql://u@h/db", DEFAULT_SCHEMA),
        ("  postgresql://u@h/db?schema=jobs  ", "postgresql://u@h/db", "jobs"),
        ("host=h dbname=db search_path=tasks", "host=h dbname=db", "tasks"),
        ("host=h schema=jobs dbname=db", "host=h dbname=db", "jobs"),
        ("host=h dbname=db search_path='a, b'", "host=h dbname=db", "a"),
        ("host=h dbname=db schema = jobs", "host=h dbname=db", "jobs"),
        ("host=h dbname=db", "host=h dbname=db", DEFAULT_SCHEMA),
    ],
)
def test_resolve(url: str, conninfo: str, schema: str) -> None:
    resolved = resolve_dsn(url)
    assert (resolved.conninfo, resolved.schema) == (conninfo, schema)


def test_schema_from_dsn_says_where_the_schema_came_from() -> None:
    assert resolve_dsn("postgresql://u@h/db?search_path=workflow").schema_from_dsn
    assert resolve_dsn("host=h schema=jobs").schema_from_dsn
    assert not resolve_dsn("postgresql://u@h/db").schema_from_dsn
    assert not resolve_dsn("postgresql://u@h/db?schema=").schema_from_dsn


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?schema=jobs",
        "postgresql://u@h/db?search_path=jobs,public&application_name=app",
        "host=h dbname=db search_path=jobs application_name=app",
    ],
)
def test_libpq_never_sees_schema_parameters(url: str) -> None:
    params = conninfo_to_dict(resolve_dsn(url).conninfo)
    assert "schema" not in params and "search_path" not in params
    assert params["dbname"] == "db"


def test_passwords_and_quoted_values_survive() -> None:
    resolved = resolve_dsn("postgresql://u:p%40ss%2Fword@h:6432/db?schema=jobs")
    assert conninfo_to_dict(resolved.conninfo)["password"] == "p@ss/word"
    kv = resolve_dsn(r"host=h password='it\'s a secret' schema=jobs")
    assert kv.schema == "jobs"
    assert conninfo_to_dict(kv.conninfo)["password"] == "it's a secret"


@pytest.mark.parametrize(
    ("query", "key", "value"),
    [
        ("application_name=my%20app", "application_name", "my app"),
        ("options=-c%20statement_timeout%3D5s", "options", "-c statement_timeout=5s"),
    ],
)
def test_other_query_parameters_reach_libpq_unchanged(query: str, key: str, value: str) -> None:
    """A space in ``options`` or ``application_name`` must stay a space for libpq."""
    url = f"postgresql://u@h/db?{query}"
    assert conninfo_to_dict(url)[key] == value, "what libpq makes of the URL as given"
    assert conninfo_to_dict(resolve_dsn(url).conninfo)[key] == value
    assert conninfo_to_dict(resolve_dsn(f"{url}&schema=jobs").conninfo)[key] == value


def test_a_plus_stays_a_plus() -> None:
    """libpq decodes %XX only; a '+' in a URL query is a literal plus, before and after."""
    url = "postgresql://u@h/db?application_name=a+b&schema=jobs"
    assert conninfo_to_dict(resolve_dsn(url).conninfo)["application_name"] == "a+b"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db?schema=" + "x" * 64,
        "postgresql://u@h/db?schema=a%01b",
        "host=h dbname=db schema=" + "y" * 64,
    ],
)
def test_bad_schema_name(url: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        resolve_dsn(url)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://app:s3cret@db/app", "postgresql://app:***@db/app"),
        ("postgres://app:s3cret@db:5432/app?schema=x", "postgres://app:***@db:5432/app?schema=x"),
        ("host=db password=s3cret user=app", "host=db password=*** user=app"),
        ("host=db PASSWORD = 's3 cret' user=app", "host=db PASSWORD = *** user=app"),
        (
            "error for postgresql://app:s3cret@db/app: refused",
            "error for postgresql://app:***@db/app: refused",
        ),
        ("postgresql://app@db/app", "postgresql://app@db/app"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert "s3cret" not in redact(text)


@pytest.mark.parametrize(
    ("url", "schema"),
    [
        ('postgresql://h/db?search_path="$user",workflow', "workflow"),
        ("postgresql://h/db?search_path=%22%24user%22%2Cpublic", "public"),
        ('postgresql://h/db?search_path="$user"', "workflow"),
    ],
)
def test_search_path_user_token_is_not_a_schema(url: str, schema: str) -> None:
    assert resolve_dsn(url).schema == schema

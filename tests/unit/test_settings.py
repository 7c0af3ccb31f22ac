"""Settings: env parsing, precedence, and errors that name the variable (exit code 2)."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from workfleet.errors import ConfigError
from workfleet.patterns import TypePattern
from workfleet.retry import QuadraticBackoff
from workfleet.settings import PrefixSpec, load_settings

PASSWORD = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("WORKFLEET_") or key.upper() in {"DATABASE_URL", "DB_SCHEMA"}:
            monkeypatch.delenv(key)


def _config_error(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> ConfigError:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    return info.value


# --- prefixes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["billing.%=8,notify.%", " billing.%=8 , notify.% ,"])
def test_prefixes_from_env(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WORKFLEET_PREFIXES", value)
    assert load_settings().prefixes == [
        PrefixSpec(TypePattern.parse("billing.%"), 8),
        PrefixSpec(TypePattern.parse("notify.%"), None),
    ]


def test_prefix_forms() -> None:
    assert PrefixSpec.parse("billing.invoice.v1=2") == PrefixSpec(
        TypePattern.parse("billing.invoice.v1"), 2
    )
    assert PrefixSpec.parse("%") == PrefixSpec(TypePattern.parse("%"), None)
    assert PrefixSpec.parse("billing.% = 8").concurrency == 8
    assert str(PrefixSpec.parse("billing.%=8")) == "billing.%=8"
    assert str(PrefixSpec.parse("notify.%")) == "notify.%"


def test_no_prefixes_means_every_executable_type(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().prefixes == []
    monkeypatch.setenv("WORKFLEET_PREFIXES", "")
    assert load_settings().prefixes == []


def test_prefixes_from_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_PREFIXES", "billing.%")
    assert [str(p) for p in load_settings(prefixes=["media.%=2"]).prefixes] == ["media.%=2"]


@pytest.mark.parametrize("value", ["billing.%=-1", "billing.%=abc", "billing.%=", "notify.%=8x"])
def test_prefix_concurrency_typos_are_errors(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    error = _config_error(monkeypatch, "WORKFLEET_PREFIXES", value)
    assert error.env_var == "WORKFLEET_PREFIXES"


# --- the database URL -------------------------------------------------------------------------


def test_database_url_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://pas:pwd@localhost/pas?search_path=workflow")
    resolved = load_settings().resolved_dsn()
    assert (resolved.conninfo, resolved.schema) == ("postgres://pas:pwd@localhost/pas", "workflow")


def test_workfleet_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/db1")
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://b@h/db2?schema=jobs")
    resolved = load_settings().resolved_dsn()
    assert (resolved.conninfo, resolved.schema) == ("postgresql://b@h/db2", "jobs")


def test_workfleet_schema_beats_the_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://b@h/db2?schema=jobs")
    monkeypatch.setenv("WORKFLEET_SCHEMA", "other")
    resolved = load_settings().resolved_dsn()
    assert (resolved.schema, resolved.schema_from_dsn) == ("other", False)


def test_unprefixed_variables_do_not_configure_workfleet(monkeypatch: pytest.MonkeyPatch) -> None:
    """An application's own ``DB_SCHEMA`` must not move workfleet to another schema."""
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://b@h/db?schema=jobs")
    monkeypatch.setenv("DB_SCHEMA", "the_apps_own_schema")
    assert load_settings().resolved_dsn().schema == "jobs"


def test_no_database_url_names_the_variable() -> None:
    settings = load_settings()
    with pytest.raises(ConfigError, match="WORKFLEET_DATABASE_URL") as info:
        settings.resolved_dsn()
    assert info.value.env_var == "WORKFLEET_DATABASE_URL"


def test_a_bad_schema_in_the_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{PASSWORD}@h/db?schema=" + "x" * 64)
    with pytest.raises(ConfigError) as info:
        load_settings().resolved_dsn()
    # the URL came from DATABASE_URL (WORKFLEET_DATABASE_URL is not set), so that is named
    assert info.value.env_var == "DATABASE_URL"
    assert str(info.value).startswith("DATABASE_URL is invalid")
    assert PASSWORD not in str(info.value)


# --- defaults and validation ------------------------------------------------------------------


def test_defaults() -> None:
    s = load_settings()
    assert (s.concurrency, s.lease_seconds, s.heartbeat_interval) == (10, 30.0, 10.0)
    assert (s.poll_only, s.skip_broken_plugins, s.http_port) == (False, False, 9464)


def test_values_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_CONCURRENCY", "25")
    monkeypatch.setenv("WORKFLEET_LEASE_SECONDS", "90")
    monkeypatch.setenv("WORKFLEET_POLL_ONLY", "true")
    monkeypatch.setenv("WORKFLEET_LOG_LEVEL", "debug")
    s = load_settings()
    assert (s.concurrency, s.lease_seconds, s.heartbeat_interval) == (25, 90.0, 30.0)
    assert (s.poll_only, s.log_level) == (True, "DEBUG")


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("WORKFLEET_CONCURRENCY", "abc"),
        ("WORKFLEET_CONCURRENCY", "0"),
        ("WORKFLEET_LEASE_SECONDS", "-1"),
        ("WORKFLEET_LEASE_SECONDS", "soon"),
        ("WORKFLEET_PREFIXES", "billing.%=0"),
        ("WORKFLEET_PREFIXES", "billing.%=8,,\x01bad"),
        ("WORKFLEET_LOG_FORMAT", "xml"),
        ("WORKFLEET_LOG_LEVEL", "chatty"),
        ("WORKFLEET_HTTP_PORT", "70000"),
        ("WORKFLEET_POLL_ONLY", "maybe"),
        ("WORKFLEET_SCHEMA", "x" * 64),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    error = _config_error(monkeypatch, var, value)
    assert error.env_var == var
    assert var in str(error)


def test_the_first_of_several_problems_is_the_one_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_CONCURRENCY", "abc")
    error = _config_error(monkeypatch, "WORKFLEET_LEASE_SECONDS", "-1")
    assert error.env_var in {"WORKFLEET_CONCURRENCY", "WORKFLEET_LEASE_SECONDS"}
    assert "WORKFLEET_CONCURRENCY" in str(error) and "WORKFLEET_LEASE_SECONDS" in str(error)


def test_heartbeat_must_be_shorter_than_the_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_LEASE_SECONDS", "30")
    error = _config_error(monkeypatch, "WORKFLEET_HEARTBEAT_SECONDS", "60")
    assert error.env_var == "WORKFLEET_HEARTBEAT_SECONDS"


# --- secrets ----------------------------------------------------------------------------------


def test_password_never_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", f"postgresql://u:{PASSWORD}@h/db?schema=bad\x01")
    error = _config_error(monkeypatch, "WORKFLEET_CONCURRENCY", "nope")
    assert PASSWORD not in str(error)
    settings = load_settings(concurrency=1)
    with pytest.raises(ConfigError) as info:
        settings.resolved_dsn()
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)


def test_password_never_in_errors_about_the_url_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # a URL given where a number is expected: the message must not echo the input
    error = _config_error(monkeypatch, "WORKFLEET_CONCURRENCY", f"postgresql://u:{PASSWORD}@h/db")
    assert PASSWORD not in str(error)
    assert error.env_var == "WORKFLEET_CONCURRENCY"


# --- parts, default timeout and backoff ----------------------------------------------------------


def test_parts_are_frozen_copies_of_the_validated_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_LEASE_SECONDS", "90")
    monkeypatch.setenv("WORKFLEET_HTTP_PORT", "9999")
    monkeypatch.setenv("WORKFLEET_RETENTION_FAILED_DAYS", "3")
    s = load_settings()
    assert (s.runtime.lease_seconds, s.runtime.heartbeat_interval) == (90.0, 30.0)
    assert s.http.http_port == 9999
    assert s.maintenance.retention_failed_days == 3
    assert s.runtime is s.runtime, "built once"
    with pytest.raises(ValidationError):
        s.runtime.lease_seconds = 1  # type: ignore[misc]


def test_default_timeout_and_backoff_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load_settings().runtime.default_timeout is None
    assert load_settings().runtime.backoff_policy() == QuadraticBackoff()
    monkeypatch.setenv("WORKFLEET_DEFAULT_TIMEOUT", "45")
    monkeypatch.setenv("WORKFLEET_BACKOFF", "exponential")
    monkeypatch.setenv("WORKFLEET_BACKOFF_BASE_SECONDS", "2")
    monkeypatch.setenv("WORKFLEET_BACKOFF_MAX_SECONDS", "600")
    monkeypatch.setenv("WORKFLEET_BACKOFF_JITTER", "0")
    runtime = load_settings().runtime
    assert runtime.default_timeout == 45
    policy = runtime.backoff_policy()
    assert [policy.delay(n) for n in (1, 2, 3, 20)] == [2, 4, 8, 600]
    monkeypatch.setenv("WORKFLEET_BACKOFF", "constant")
    assert load_settings().runtime.backoff_policy().delay(7) == 2
    monkeypatch.setenv("WORKFLEET_BACKOFF", "quadratic")
    assert [load_settings().runtime.backoff_policy().delay(n) for n in (1, 3, 100)] == [2, 18, 600]


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("WORKFLEET_DEFAULT_TIMEOUT", "0"),
        ("WORKFLEET_BACKOFF", "fibonacci"),
        ("WORKFLEET_BACKOFF_BASE_SECONDS", "-1"),
        ("WORKFLEET_BACKOFF_MAX_SECONDS", "1e300"),
        ("WORKFLEET_BACKOFF_JITTER", "2"),
    ],
)
def test_invalid_timeout_and_backoff_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    error = _config_error(monkeypatch, var, value)
    assert error.env_var == var

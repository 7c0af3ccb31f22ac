"""Settings: env parsing, precedence, and errors that name the variable (exit code 2)."""

from __future__ import annotations

import pytest

from workfleet.errors import ConfigError
from workfleet.patterns import TypePattern
from workfleet.settings import PrefixSpec, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("WORKFLEET_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)


def test_prefixes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_PREFIXES", "billing.%=8, notify.%")
    settings = load_settings()
    assert settings.prefixes == [
        PrefixSpec(TypePattern.parse("billing.%"), 8),
        PrefixSpec(TypePattern.parse("notify.%"), None),
    ]


def test_prefixes_from_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_PREFIXES", "billing.%")
    assert [str(p) for p in load_settings(prefixes=["media.%=2"]).prefixes] == ["media.%=2"]


def test_database_url_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@h/db1")
    assert load_settings().resolved_dsn().conninfo == "postgresql://a@h/db1"
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://b@h/db2?schema=jobs")
    resolved = load_settings().resolved_dsn()
    assert (resolved.conninfo, resolved.schema) == ("postgresql://b@h/db2", "jobs")
    monkeypatch.setenv("WORKFLEET_SCHEMA", "other")
    assert load_settings().resolved_dsn().schema == "other"


def test_defaults() -> None:
    s = load_settings()
    assert (s.concurrency, s.lease_seconds, s.heartbeat_interval) == (10, 30.0, 10.0)
    assert s.prefixes == []
    with pytest.raises(ConfigError, match="WORKFLEET_DATABASE_URL"):
        s.resolved_dsn()


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("WORKFLEET_CONCURRENCY", "abc"),
        ("WORKFLEET_CONCURRENCY", "0"),
        ("WORKFLEET_LEASE_SECONDS", "-1"),
        ("WORKFLEET_PREFIXES", "billing.%=0"),
        ("WORKFLEET_LOG_FORMAT", "xml"),
        ("WORKFLEET_HTTP_PORT", "70000"),
        ("WORKFLEET_POLL_ONLY", "maybe"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.env_var == var
    assert var in str(info.value)


def test_password_never_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://u:hunter2@h/db?schema=bad\x01")
    monkeypatch.setenv("WORKFLEET_CONCURRENCY", "nope")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)
    settings = load_settings(concurrency=1)
    with pytest.raises(ConfigError) as info2:
        settings.resolved_dsn()
    assert "hunter2" not in str(info2.value)
    assert "hunter2" not in repr(settings)

"""Configuration errors name their cause: the variable or flag at fault, what was probably
meant, and variables that nothing reads (operator and newcomer experience)."""

from __future__ import annotations

import pytest

from workfleet.cli.main import build_parser, main
from workfleet.cli.options import settings_from
from workfleet.dsn import resolve_dsn
from workfleet.errors import ConfigError
from workfleet.settings import PrefixSpec, load_settings, unknown_variables

PASSWORD = "pw-not-shown-9"


@pytest.mark.parametrize(
    ("dsn", "says"),
    [
        (f"postgresq://app:{PASSWORD}@db.example.com/app", "did you mean postgresql://"),
        (f"mysql://app:{PASSWORD}@db.example.com/app", "'mysql' is not postgresql://"),
        ("nonsense", "not a postgresql:// URL nor a libpq 'key=value' string"),
        (f"host=db.example.com password={PASSWORD} oops", "unreadable from character"),
        ("host=db.example.com dbnme=app", "'dbnme' is not a libpq connection keyword"),
    ],
)
def test_a_dsn_that_libpq_would_replace_by_its_defaults_is_refused(dsn: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as info:
        resolve_dsn(dsn)
    assert PASSWORD not in str(info.value)


@pytest.mark.parametrize(
    "dsn", ["", "host=h dbname=db", "host=h password='a b\\' c' port = 5433", "dbname=x"]
)
def test_libpq_keyword_strings_are_still_accepted(dsn: str) -> None:
    resolve_dsn(dsn)


@pytest.mark.parametrize("variable", ["DATABASE_URL", "WORKFLEET_DATABASE_URL"])
def test_a_bad_dsn_is_a_config_error_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, f"postgresq://app:{PASSWORD}@db.example.com/app")
    with pytest.raises(ConfigError) as info:
        load_settings().resolved_dsn()
    assert info.value.env_var == variable
    assert str(info.value).startswith(f"{variable} is invalid")


def test_a_bad_prefix_flag_is_blamed_on_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKFLEET_PREFIXES", raising=False)
    args = build_parser().parse_args(["worker", "--prefix", "billing.%=lots"])
    with pytest.raises(ConfigError) as info:
        settings_from(args)
    assert info.value.env_var == "--prefix"
    assert "WORKFLEET_PREFIXES" not in str(info.value)


def test_a_bad_prefix_variable_is_blamed_on_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLEET_PREFIXES", "billing.%=lots")
    args = build_parser().parse_args(["worker"])
    with pytest.raises(ConfigError) as info:
        settings_from(args)
    assert info.value.env_var == "WORKFLEET_PREFIXES"


def test_a_shell_wildcard_prefix_suggests_the_pattern_meant() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'billing\.%'\?"):
        PrefixSpec.parse("billing.*")
    with pytest.raises(ValueError, match=r"did you mean 'billing\.%'\?"):
        PrefixSpec.parse("billing.*=4")


def test_a_prefix_with_two_limits_is_refused() -> None:
    with pytest.raises(ValueError, match="more than one '='"):
        PrefixSpec.parse("billing.%=8=9")


def test_unknown_workfleet_variables_are_warned_about() -> None:
    environ = {
        "WORKFLEET_CONCURENCY": "4",  # misspelt
        "WORKFLEET_PREFIXES": "billing.%",
        "WORKFLEET_TEST_DATABASE_URL": "postgresql://h/db",
        "WORKFLEET_DB_SCHEMA": "jobs",  # the field's name, but the variable is WORKFLEET_SCHEMA
        "PATH": "/bin",
    }
    warnings = unknown_variables(environ)
    assert warnings == [
        "WORKFLEET_CONCURENCY is not a workfleet setting and is ignored; "
        "did you mean WORKFLEET_CONCURRENCY?",
        "WORKFLEET_DB_SCHEMA is not a workfleet setting and is ignored; "
        "did you mean WORKFLEET_SCHEMA?",
    ]


def test_the_cli_prints_the_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORKFLEET_LOG_LEVL", "DEBUG")
    # logging set up on pytest's captured stream would outlive this test
    monkeypatch.setattr("workfleet.cli.options.configure_logging", lambda *a: None)
    settings_from(build_parser().parse_args(["plugins"]))
    err = capsys.readouterr().err
    assert "warning: WORKFLEET_LOG_LEVL is not a workfleet setting" in err
    assert "did you mean WORKFLEET_LOG_LEVEL?" in err


@pytest.mark.parametrize("command", [["check"], ["migrate"], ["status"]])
def test_commands_exit_2_on_a_mistyped_url_instead_of_using_libpq_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    monkeypatch.delenv("WORKFLEET_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"postgresq://app:{PASSWORD}@db.example.com/app")
    monkeypatch.setattr("workfleet.cli.options.configure_logging", lambda *a: None)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL is invalid" in err and PASSWORD not in err


@pytest.mark.parametrize(
    ("run_type", "payload", "says"),
    [
        ("t.v1", '{"s": "nul \\u0000 inside"}', "NUL character"),
        ("t." + "é" * 127, "{}", "256 bytes long; the limit is 255 bytes"),
    ],
)
def test_enqueue_refuses_bad_input_with_exit_2_before_the_database(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    run_type: str,
    payload: str,
    says: str,
) -> None:
    # nothing listens on port 1: reaching for the database would be exit 3
    monkeypatch.setenv("WORKFLEET_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    monkeypatch.setattr("workfleet.cli.options.configure_logging", lambda *a: None)
    assert main(["enqueue", run_type, payload]) == 2
    assert says in capsys.readouterr().err

"""The one settings model. Environment prefix ``WORKFLEET_``; ``__`` nests.

Validation errors become :class:`ConfigError` naming the environment variable at fault, which the
CLI turns into exit code 2.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from workfleet.dsn import ResolvedDsn, resolve_dsn, validate_schema_name
from workfleet.errors import ConfigError
from workfleet.models import MAX_DELAY_SECONDS
from workfleet.patterns import TypePattern
from workfleet.retry import Backoff, ConstantBackoff, ExponentialBackoff, QuadraticBackoff

ENV_PREFIX = "WORKFLEET_"


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    """One lease loop: a type pattern and its own concurrency (None: the default)."""

    pattern: TypePattern
    concurrency: int | None = None

    @classmethod
    def parse(cls, text: str) -> PrefixSpec:
        """Parse ``billing.%=8`` or ``notify.%``: a pattern, then at most one ``=N``."""
        text = text.strip()
        head, sep, tail = text.partition("=")
        head, tail = head.strip(), tail.strip()
        if sep and "=" in tail:
            raise ValueError(f"{text!r} has more than one '='; write PATTERN or PATTERN=N")
        if sep and not tail.isdigit():
            raise ValueError(f"concurrency for {head!r} must be a whole number >= 1, got {tail!r}")
        glob_hint(head)
        if sep:
            concurrency = int(tail)
            if concurrency < 1:
                raise ValueError(f"concurrency for {head!r} must be at least 1")
            return cls(TypePattern.parse(head), concurrency)
        return cls(TypePattern.parse(text), None)

    def __str__(self) -> str:
        return f"{self.pattern}={self.concurrency}" if self.concurrency else str(self.pattern)


def glob_hint(pattern: str) -> None:
    """Refuse a shell-style ``*`` wildcard, saying what was meant: patterns end in ``%``."""
    if "*" in pattern or "?" in pattern:
        meant = re.sub(r"[*?]+$", "%", pattern.rstrip())
        hint = f"; did you mean {meant!r}?" if meant.endswith("%") and "*" not in meant else ""
        raise ValueError(
            f"{pattern!r}: a type pattern is a type or a prefix ending in '%' (as in SQL LIKE), "
            f"not a shell wildcard{hint}"
        )


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_FROZEN = ConfigDict(frozen=True, populate_by_name=True)


class RuntimeSettings(BaseModel):
    """What the runtime (lease loops, executions, heartbeats, drain) needs, passed whole."""

    model_config = _FROZEN

    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=200)
    prefixes: Annotated[list[PrefixSpec], NoDecode] = Field(
        default_factory=list,
        description="Lease loops: 'billing.%=8,notify.%'. Empty: every type the plugins execute.",
    )
    concurrency: int = Field(default=10, ge=1, le=10_000)
    lease_seconds: float = Field(default=30.0, gt=0, le=86_400)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    poll_interval: float = Field(default=5.0, gt=0, le=3600)
    fetch_cooldown: float = Field(default=0.01, ge=0, le=60)
    # "all": the full audit trail; "failures": no leased/started/succeeded events (the hot
    # path's rows), retries, failures, cancellations and everything else still recorded
    run_events: Literal["all", "failures"] = "all"
    drain_timeout: float = Field(default=30.0, ge=0)
    cancel_grace: float = Field(default=5.0, ge=0)
    # executors without a timeout of their own; None: no timeout
    default_timeout: float | None = Field(default=None, gt=0)
    # the retry delay after a failed attempt, for executors without a backoff of their own:
    # quadratic (attempt² x base, the seed's default: 1, 4, 9 ... minutes), exponential
    # (base x 2^(attempt-1)) or constant (base); capped at backoff_max_seconds, plus 0-jitter
    backoff: Literal["quadratic", "exponential", "constant"] = "quadratic"
    backoff_base_seconds: float = Field(default=60.0, ge=0, le=MAX_DELAY_SECONDS)
    backoff_max_seconds: float | None = Field(default=None, gt=0, le=MAX_DELAY_SECONDS)
    backoff_jitter: float = Field(default=0.1, ge=0, le=1)
    # the largest JSON a workflow step may return (it is stored as the step's checkpoint)
    workflow_max_output_bytes: int = Field(default=1 << 20, ge=1024, le=256 << 20)

    @field_validator("prefixes", mode="before")
    @classmethod
    def _split_prefixes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [PrefixSpec.parse(v) if isinstance(v, str) else v for v in value]
        return value

    @field_validator("heartbeat_seconds")
    @classmethod
    def _heartbeat_within_lease(cls, value: float | None, info: ValidationInfo) -> float | None:
        # A heartbeat no faster than the lease lets every long run's lease expire between beats.
        lease = info.data.get("lease_seconds")
        if value is not None and lease is not None and value >= lease:
            raise ValueError(f"must be shorter than WORKFLEET_LEASE_SECONDS ({lease:g})")
        return value

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds or self.lease_seconds / 3.0

    def backoff_policy(self) -> Backoff:
        """The default retry delay policy these settings describe."""
        cap = self.backoff_max_seconds
        if self.backoff == "constant":
            delay = (
                self.backoff_base_seconds if cap is None else min(self.backoff_base_seconds, cap)
            )
            return ConstantBackoff(delay)
        if self.backoff == "exponential":
            return ExponentialBackoff(
                base=self.backoff_base_seconds,
                cap=MAX_DELAY_SECONDS if cap is None else cap,
                jitter=self.backoff_jitter,
            )
        return QuadraticBackoff(unit=self.backoff_base_seconds, jitter=self.backoff_jitter, cap=cap)


class DatabaseSettings(BaseModel):
    """Where the tables are and how to reach them."""

    model_config = _FROZEN

    database_url: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("WORKFLEET_DATABASE_URL", "DATABASE_URL", "database_url"),
        description="PostgreSQL URL; ?schema= or ?search_path= selects the schema.",
    )
    db_schema: str | None = Field(
        default=None,
        # Only the prefixed name: a bare DB_SCHEMA in the environment belongs to someone else.
        validation_alias=AliasChoices("WORKFLEET_SCHEMA"),
        description="Schema of the workflow tables (default: from the URL, else 'workflow').",
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int | None = Field(default=None, ge=1)
    connect_timeout: float = Field(default=10.0, gt=0)
    poll_only: bool = False

    @field_validator("db_schema")
    @classmethod
    def _check_schema(cls, value: str | None) -> str | None:
        return None if value is None else validate_schema_name(value)

    def resolved_dsn(self) -> ResolvedDsn:
        """The libpq conninfo and schema; ``WORKFLEET_SCHEMA`` beats the URL's schema."""
        if self.database_url is None:
            raise ConfigError(
                "no database configured: set WORKFLEET_DATABASE_URL (or DATABASE_URL)",
                env_var="WORKFLEET_DATABASE_URL",
            )
        try:
            resolved = resolve_dsn(self.database_url.get_secret_value())
        except ValueError as exc:
            var = _database_url_variable()
            raise ConfigError(f"{var} is invalid: {exc}", env_var=var) from None
        if self.db_schema is not None:
            return ResolvedDsn(resolved.conninfo, self.db_schema, schema_from_dsn=False)
        return resolved

    @property
    def schema_name(self) -> str:
        return self.resolved_dsn().schema


def _database_url_variable() -> str:
    """The variable the URL came from (WORKFLEET_DATABASE_URL wins over DATABASE_URL)."""
    if "WORKFLEET_DATABASE_URL" not in os.environ and "DATABASE_URL" in os.environ:
        return "DATABASE_URL"
    return "WORKFLEET_DATABASE_URL"


class HttpSettings(BaseModel):
    """The probe and metrics server."""

    model_config = _FROZEN

    http_enabled: bool = True
    http_host: str = "0.0.0.0"  # noqa: S104 - a worker in a pod serves probes on all interfaces
    http_port: int = Field(default=9464, ge=0, le=65535)


class MaintenanceSettings(BaseModel):
    """The side loops: cron ticker, lease sweep, retention, pending gauges."""

    model_config = _FROZEN

    schedules_enabled: bool = True
    schedule_interval: float = Field(default=10.0, gt=0)
    maintenance_enabled: bool = True
    maintenance_interval: float = Field(default=60.0, gt=0)
    sweep_interval: float = Field(default=5.0, gt=0)
    retention_succeeded_days: float = Field(default=7.0, ge=0)
    retention_cancelled_days: float = Field(default=7.0, ge=0)
    retention_failed_days: float = Field(default=30.0, ge=0)
    pending_metrics_interval: float = Field(default=15.0, ge=0)


class LogSettings(BaseModel):
    """Log format and level."""

    model_config = _FROZEN

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ApiKey(BaseModel):
    """One API key as configuration holds it: a name for the logs, the SHA-256 of the key (hex,
    never the key itself) and its scope (``read``: GET routes only; ``admin``: everything)."""

    model_config = _FROZEN

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    sha256: str
    scope: Literal["read", "admin"] = "read"

    @field_validator("sha256", mode="before")
    @classmethod
    def _hex(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower().removeprefix("sha256:")
            if not _SHA256.match(value):
                raise ValueError("must be the 64 hex digits of the key's SHA-256")
        return value

    @classmethod
    def parse(cls, text: str) -> ApiKey:
        """``name:scope:sha256hex`` (the compact form of ``WORKFLEET_API__KEYS``)."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise ValueError(
                f"API key entries look like name:scope:sha256hex, got {len(parts)} parts"
            )
        name, scope, digest = parts
        return cls(name=name, scope=scope, sha256=digest)


class ApiSettings(BaseModel):
    """The REST API and console process (``workfleet api``); ``WORKFLEET_API__*``."""

    model_config = _FROZEN

    host: str = "0.0.0.0"  # noqa: S104 - the API in a pod listens on all interfaces
    port: int = Field(default=8080, ge=0, le=65535)
    # Keys as a JSON list of {name, sha256, scope} or 'name:scope:sha256hex,...'; from a Secret.
    keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)
    # The largest request body accepted (bytes); larger ones are answered 413.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=256 * 1_048_576)
    # Type patterns POST /workflows accepts ('billing.%'); empty: any valid type.
    allowed_types: Annotated[list[str], NoDecode] = Field(default_factory=list)
    pool_max_size: int = Field(default=10, ge=1, le=1000)
    # Counts on pages and in /stats stop here (never an unbounded count(*)).
    count_cap: int = Field(default=10_000, ge=1, le=10_000_000)
    # The window /stats reports recent successes and failures over.
    stats_window_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Signs the console's session cookie; default: derived from the configured keys' hashes.
    session_secret: SecretStr | None = None
    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Mark the console's cookie Secure (serve the console over HTTPS, e.g. behind an Ingress).
    secure_cookies: bool = False
    # How often an event stream looks for new events, and how long one stream lasts before the
    # client reconnects with Last-Event-ID.
    events_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    events_stream_seconds: float = Field(default=300.0, gt=0, le=3600)

    @field_validator("keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [ApiKey.parse(part) for part in text.split(",") if part.strip()]
        return value

    @field_validator("allowed_types", mode="before")
    @classmethod
    def _split_types(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for item in value:
                TypePattern.parse(item)  # ValueError names what is wrong
        return value

    def type_patterns(self) -> list[TypePattern]:
        return [TypePattern.parse(t) for t in self.allowed_types]


_Part = TypeVar("_Part", bound=BaseModel)


class Settings(
    RuntimeSettings,
    DatabaseSettings,
    HttpSettings,
    MaintenanceSettings,
    LogSettings,
    BaseSettings,
):
    """Worker and CLI configuration, validated once at start-up, from flat ``WORKFLEET_*``
    variables. Its parts (:attr:`runtime`, :attr:`database`, :attr:`http`,
    :attr:`maintenance`, :attr:`logging`) are handed whole to the pieces that use them."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="ignore",
        populate_by_name=True,
        frozen=True,
    )

    skip_broken_plugins: bool = False
    # WORKFLEET_API__*: the REST API and console (`workfleet api`), a nested part of its own
    api: ApiSettings = Field(default_factory=ApiSettings)

    def _part(self, cls: type[_Part]) -> _Part:
        # already validated as part of this model: copy the values, do not validate again
        return cls.model_construct(**{name: getattr(self, name) for name in cls.model_fields})

    @cached_property
    def runtime(self) -> RuntimeSettings:
        return self._part(RuntimeSettings)

    @cached_property
    def database(self) -> DatabaseSettings:
        return self._part(DatabaseSettings)

    @cached_property
    def http(self) -> HttpSettings:
        return self._part(HttpSettings)

    @cached_property
    def maintenance(self) -> MaintenanceSettings:
        return self._part(MaintenanceSettings)

    @cached_property
    def logging(self) -> LogSettings:
        return self._part(LogSettings)


def env_var_for(loc: tuple[int | str, ...], flags: Mapping[str, str] | None = None) -> str:
    """The environment variable (or, for a value given on the command line, the flag in
    ``flags``, a field name to flag map) a pydantic error location refers to."""
    field = str(loc[0]) if loc else ""
    if flags and field in flags:
        return flags[field]
    if field == "database_url":
        return _database_url_variable()
    aliases = {"db_schema": "WORKFLEET_SCHEMA"}
    if field in aliases:
        return aliases[field]
    if field.startswith(ENV_PREFIX) or field == "DATABASE_URL":
        return field
    return ENV_PREFIX + "__".join(str(p).upper() for p in loc if isinstance(p, str))


def load_settings(flags: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from the environment plus ``overrides`` (CLI flags).

    Raises :class:`ConfigError` whose message names the environment variable at fault, or the
    flag for a field that ``flags`` (field name to flag) says came from the command line.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        var = env_var_for(tuple(first["loc"]), flags)
        problems = "; ".join(
            f"{env_var_for(tuple(e['loc']), flags)}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}", env_var=var) from None


# WORKFLEET_* names that are not settings but are read by someone else on purpose
OTHER_VARIABLES = frozenset({"WORKFLEET_TEST_DATABASE_URL", "WORKFLEET_IMAGE"})


def known_variables() -> frozenset[str]:
    """Every ``WORKFLEET_*`` variable a setting is read from."""
    # db_schema is read only under its alias (see DatabaseSettings)
    names = {ENV_PREFIX + name.upper() for name in Settings.model_fields if name != "db_schema"}
    return frozenset(names | {"WORKFLEET_DATABASE_URL", "WORKFLEET_SCHEMA"})


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each ``WORKFLEET_*`` variable no setting reads (a typo is otherwise
    silently ignored), with the closest known name when there is one."""
    env = os.environ if environ is None else environ
    known = known_variables()
    warnings = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in known or name in OTHER_VARIABLES:
            continue
        if name.split("__", 1)[0] in known:
            continue  # a nested value of a known setting
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{name} is not a workfleet setting and is ignored{hint}")
    return warnings

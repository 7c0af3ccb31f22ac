"""Database URL handling: schema parameters, redaction.

simple-workflow's DSNs carry ``?search_path=X`` or ``?schema=X``. libpq rejects both as unknown
parameters, so they are taken out here and become the schema name every query is qualified with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_SCHEMA = "workflow"
_URL_SCHEMES = ("postgres://", "postgresql://")
# libpq's connection keywords (PostgreSQL 16's list, plus those of older releases): a word
# outside it is a typo that libpq would refuse only at connect time, or, in a string with no
# "=" at all, a URL or a name that was never a connection string
_LIBPQ_KEYWORDS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "dbname",
        "user",
        "password",
        "passfile",
        "require_auth",
        "channel_binding",
        "connect_timeout",
        "client_encoding",
        "options",
        "application_name",
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "replication",
        "gssencmode",
        "sslmode",
        "requiressl",
        "sslcompression",
        "sslcert",
        "sslkey",
        "sslpassword",
        "sslcertmode",
        "sslrootcert",
        "sslcrl",
        "sslcrldir",
        "sslsni",
        "requirepeer",
        "ssl_min_protocol_version",
        "ssl_max_protocol_version",
        "krbsrvname",
        "gsslib",
        "gssdelegation",
        "service",
        "target_session_attrs",
        "load_balance_hosts",
        "sslnegotiation",
    }
)
# key = value, the value bare (no spaces, no quote) or single-quoted with backslash escapes
_KV_PAIR = re.compile(r"\s*(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)\s*")
_SCHEMA_KEYS = ("schema", "search_path")
_IDENT_MAX = 63


@dataclass(frozen=True, slots=True)
class ResolvedDsn:
    """A libpq-safe connection string and the schema workfleet's tables live in."""

    conninfo: str
    schema: str
    schema_from_dsn: bool


def _first_schema(value: str) -> str:
    # search_path may list several schemas ("workflow,public"); ours is the first one that
    # names a schema: "$user" stands for the role's own schema, which may not even exist
    for part in value.split(","):
        name = part.strip().strip('"')
        if name and name != "$user":
            return name
    return ""


# `options=-csearch_path=X` (libpq's way, which psql and every libpq-based driver honour, and
# which JDBC and others spell the same): the schema workfleet should use too
_OPTIONS_SEARCH_PATH = re.compile(r"(?:^|\s)(?:-c\s*|--)search_path=((?:\\.|[^\s\\])+)")


def _options_schema(options: str) -> str | None:
    match = _OPTIONS_SEARCH_PATH.search(options)
    if match is None:
        return None
    return _first_schema(re.sub(r"\\(.)", r"\1", match.group(1))) or None


def validate_schema_name(name: str) -> str:
    """Return ``name`` if it is usable as a schema identifier, else raise ``ValueError``."""
    if not name or len(name) > _IDENT_MAX:
        raise ValueError(f"schema name must be 1-{_IDENT_MAX} characters, got {name!r}")
    if any(ord(c) < 32 for c in name):
        raise ValueError("schema name must not contain control characters")
    return name


def _keyword_pairs(dsn: str) -> list[tuple[str, str]]:
    """The ``key=value`` pairs of a libpq keyword string; ``ValueError`` for anything else.

    libpq would take a string it cannot use for its defaults (the local socket, the user's own
    database) and connect to the wrong server without a word: a mistyped URL scheme, another
    database's URL or a stray word must be refused here instead.
    """
    scheme = re.match(r"([A-Za-z][\w+.-]*)://", dsn)
    if scheme:
        hint = ""
        if scheme.group(1).lower().startswith(("postg", "pg", "psql")):
            hint = " (did you mean postgresql://?)"
        raise ValueError(
            f"the URL scheme {scheme.group(1)!r} is not postgresql:// or postgres://{hint}"
        )
    pairs: list[tuple[str, str]] = []
    position = 0
    while position < len(dsn):
        match = _KV_PAIR.match(dsn, position)
        if match is None or match.end() == position:
            # the position, not the text: it may be part of a password
            raise ValueError(
                "not a postgresql:// URL nor a libpq 'key=value' string "
                f"(unreadable from character {position + 1})"
            )
        key = match.group(1)
        if key not in _LIBPQ_KEYWORDS and key not in _SCHEMA_KEYS:
            raise ValueError(f"{key!r} is not a libpq connection keyword")
        pairs.append((key, match.group(2)))
        position = match.end()
    return pairs


def _schema_of(pairs: list[tuple[str, str]]) -> str | None:
    """The schema ``(key, decoded value)`` parameters name: ``search_path`` wins over
    ``schema`` (as in simple-workflow), and either wins over ``options=-csearch_path=``."""
    named: dict[str, str] = {}
    for key, value in pairs:
        found = _options_schema(value) if key == "options" else None
        found = _first_schema(value) if key in _SCHEMA_KEYS else found
        if found:
            named.setdefault(key, found)
    return named.get("search_path") or named.get("schema") or named.get("options")


def resolve_dsn(dsn: str) -> ResolvedDsn:
    """Split ``dsn`` into a conninfo libpq accepts and the schema it names (or the default).

    ``dsn`` is a ``postgresql://`` (or ``postgres://``) URL or a libpq ``key=value`` string
    (empty: libpq's defaults); anything else raises ``ValueError`` saying what is wrong.
    ``?search_path=`` and ``?schema=`` are taken out (libpq refuses them); ``options`` stays
    (libpq applies it) and names the schema when they do not.
    """
    dsn = dsn.strip()
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(dsn)
        raw = [p.partition("=") for p in parts.query.split("&")] if parts.query else []
        pairs = [(unquote(k), unquote(v)) for k, _, v in raw]
        # Other parameters go to libpq byte for byte: re-encoding them (urlencode turns %20
        # into '+', which libpq does not decode) would change values such as options=-c%20...
        kept = [f"{k}{sep}{v}" for k, sep, v in raw if (k or v) and unquote(k) not in _SCHEMA_KEYS]
        conninfo = urlunsplit(parts._replace(query="&".join(kept)))
    else:
        pairs = [(k, v.strip("'")) for k, v in _keyword_pairs(dsn)]
        conninfo = " ".join(f"{k}={v}" for k, v in _keyword_pairs(dsn) if k not in _SCHEMA_KEYS)
    schema = _schema_of(pairs)
    if schema is not None:
        validate_schema_name(schema)
    return ResolvedDsn(conninfo, schema or DEFAULT_SCHEMA, schema is not None)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace passwords in any DSN-looking text with ``***``."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _KV_PASSWORD.sub(r"\1***", text)

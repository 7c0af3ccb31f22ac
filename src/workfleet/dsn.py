"""Database URL handling: schema parameters, redaction.

simple-workflow's DSNs carry ``?search_path=X`` or ``?schema=X``. libpq rejects both as unknown
parameters, so they are taken out here and become the schema name every query is qualified with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

DEFAULT_SCHEMA = "workflow"
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


def validate_schema_name(name: str) -> str:
    """Return ``name`` if it is usable as a schema identifier, else raise ``ValueError``."""
    if not name or len(name) > _IDENT_MAX:
        raise ValueError(f"schema name must be 1-{_IDENT_MAX} characters, got {name!r}")
    if any(ord(c) < 32 for c in name):
        raise ValueError("schema name must not contain control characters")
    return name


def resolve_dsn(dsn: str) -> ResolvedDsn:
    """Split ``dsn`` into a conninfo libpq accepts and the schema it names (or the default)."""
    dsn = dsn.strip()
    if dsn.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(dsn)
        schema: str | None = None
        kept: list[str] = []
        # Other parameters go to libpq byte for byte: re-encoding them (urlencode turns %20
        # into '+', which libpq does not decode) would change values such as options=-c%20...
        for pair in parts.query.split("&") if parts.query else []:
            key, _, value = pair.partition("=")
            if unquote(key) in _SCHEMA_KEYS:
                # search_path wins over schema when both are present, as in simple-workflow
                if unquote(key) == "search_path" or schema is None:
                    schema = _first_schema(unquote(value)) or schema
            elif pair:
                kept.append(pair)
        conninfo = urlunsplit(parts._replace(query="&".join(kept)))
    else:
        schema = None
        tokens: list[str] = []
        for match in re.finditer(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", dsn):
            key, value = match.group(1), match.group(2)
            if key in _SCHEMA_KEYS:
                raw = value.strip("'")
                if key == "search_path" or schema is None:
                    schema = _first_schema(raw) or schema
            else:
                tokens.append(f"{key}={value}")
        conninfo = " ".join(tokens)
    if schema is not None:
        validate_schema_name(schema)
    return ResolvedDsn(conninfo, schema or DEFAULT_SCHEMA, schema is not None)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str) -> str:
    """Replace passwords in any DSN-looking text with ``***``."""
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _KV_PASSWORD.sub(r"\1***", text)

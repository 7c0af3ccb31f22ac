"""How PostgreSQL treats the values the store binds, reproduced for the in-memory store.

``LIKE`` with the default ``\\`` escape, jsonb input (no ``NaN``, no ``\\u0000``), text (no NUL
bytes) and ``now() + make_interval(secs => x)``. Where PostgreSQL raises, these raise
:class:`~workfleet.errors.StoreError`, as :class:`~workfleet.db.store.PgStore` does.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from workfleet.errors import StoreError


@lru_cache(maxsize=512)
def _like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError("LIKE pattern must not end with escape character")
            out.append(re.escape(escaped))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    # DOTALL: in SQL `_` and `%` match newlines too
    return re.compile("".join(out), re.DOTALL)


def like(value: str, pattern: str) -> bool:
    """``value LIKE pattern``: case-sensitive, ``%`` and ``_`` wildcards, ``\\`` escapes.

    Raises ``ValueError`` for a pattern ending in a lone ``\\``, as PostgreSQL does.
    """
    return _like_regex(pattern).fullmatch(value) is not None


def like_or_store_error(value: str, pattern: str) -> bool:
    """:func:`like`, with PostgreSQL's error surfaced as a :class:`StoreError`."""
    try:
        return like(value, pattern)
    except ValueError as exc:
        raise StoreError(f"invalid LIKE pattern {pattern!r}: {exc}") from exc


def check_text(what: str, *values: str | None) -> None:
    """Reject NUL characters, which PostgreSQL ``text`` cannot hold."""
    for value in values:
        if value is not None and "\x00" in value:
            raise StoreError(f"{what}: PostgreSQL text fields cannot contain NUL (0x00) bytes")


def check_int4(what: str, *values: int | None) -> None:
    """Reject integers outside PostgreSQL's ``int`` range."""
    for value in values:
        if value is not None and not -(2**31) <= value < 2**31:
            raise StoreError(f"{what}: integer out of range: {value}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"Token {name!r} is invalid")


def _check_json_strings(value: Any) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("unsupported Unicode escape sequence: \\u0000")
    elif isinstance(value, list):
        for item in value:
            _check_json_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json_strings(key)
            _check_json_strings(item)


def parse_jsonb(text: str, what: str) -> Any:
    """Parse ``text`` as a jsonb input; what reads back is a fresh Python value."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        _check_json_strings(value)
    except ValueError as exc:
        raise StoreError(f"{what}: invalid input syntax for type json: {exc}") from exc
    return value


def to_jsonb(value: Any, what: str) -> Any:
    """``value`` serialised as :class:`PgStore` binds payloads (strict JSON), read back as jsonb."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{what} is not JSON-serialisable: {exc}") from exc
    return parse_jsonb(text, what)


def event_data_to_jsonb(data: dict[str, Any]) -> Any:
    """Event data as :class:`PgStore` binds it (``default=str``), read back as jsonb."""
    return parse_jsonb(json.dumps(data, default=str), "event data")


def float8_in_jsonb(value: float) -> int | float:
    """How a ``float8`` bound into ``jsonb_build_object`` reads back: integral values as ints."""
    return int(value) if float(value).is_integer() else float(value)


def plus_seconds(moment: datetime, seconds: float) -> datetime:
    """``moment + make_interval(secs => seconds)``; out-of-range intervals are store errors."""
    if not math.isfinite(seconds):
        raise StoreError(f"interval out of range: {seconds!r} seconds")
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError as exc:
        raise StoreError(f"timestamp out of range: now + {seconds!r} seconds") from exc


def as_timestamptz(moment: datetime) -> datetime:
    """A bound ``timestamptz``; a naive datetime is read as UTC (PostgreSQL: the session zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

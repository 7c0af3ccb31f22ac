"""Turning Python values and exceptions into what PostgreSQL's ``text`` and ``jsonb`` accept.

Pure functions shared by the runtime's outcome rules and the workflow checkpoints: one value
the database refuses would fail a whole batched write, so every value is checked here first.
"""

from __future__ import annotations

import json
import re
import traceback
from typing import Any

from pydantic import BaseModel

from workfleet.dsn import redact
from workfleet.models import Fail, Retry

MAX_ERROR_CHARS = 500
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 8000
# the frames nearest the raise say what went wrong; the outer ones are the runtime's own
MAX_TRACEBACK_FRAMES = 20

# A JSON "\u0000" escape that is not itself an escaped backslash followed by "u0000"
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def printable(text: str) -> str:
    """``text`` as PostgreSQL ``text`` and ``jsonb`` accept it: NUL spelt ``\\x00``, lone
    surrogates escaped. One such character would fail the whole batched outcome write."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def short_error(exc: BaseException) -> str:
    """A one-line, bounded ``last_error`` for humans: ``Type: message``."""
    text = redact(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    label = type(exc).__name__
    line = printable(f"{label}: {text}" if text else label)
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


def traceback_text(exc: BaseException) -> str:
    """The exception's traceback, secrets-free and bounded: its last ``MAX_TRACEBACK_FRAMES``
    frames (per exception in a chain), no local variables (never formatted), passwords in any
    DSN-looking text redacted, and its last ``MAX_TRACEBACK_CHARS`` characters."""
    text = redact("".join(traceback.format_exception(exc, limit=-MAX_TRACEBACK_FRAMES)))
    return printable(text[-MAX_TRACEBACK_CHARS:])


def error_data(exc: BaseException) -> dict[str, Any]:
    """What an attempt's failed or retried event records about its exception: the type's
    qualified name, the full message (bounded, passwords redacted) and the traceback (not for
    ``Fail``/``Retry``, which are decisions, not accidents)."""
    kind = type(exc)
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    message = printable(redact(str(exc)))
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    data: dict[str, Any] = {"error_type": f"{module}{kind.__qualname__}", "message": message}
    if not isinstance(exc, Fail | Retry):
        data["traceback"] = traceback_text(exc)
    return data


# one encoder for every result: json.dumps builds a new one per call when given options
_encode_result = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def to_json(value: Any) -> str:
    """Serialise an executor's return value; raise ``TypeError``/``ValueError`` if impossible
    (not JSON, NaN or infinity, a NUL character or a lone surrogate, which ``jsonb`` refuses)."""
    if value is None:
        return "null"  # most executors return nothing
    text = value.model_dump_json() if isinstance(value, BaseModel) else _encode_result(value)
    if "\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError("it contains a NUL character (\\u0000), which jsonb cannot store")
    if "\\ud" in text:
        # json.dumps escapes surrogates; a lone one (not a pair) is refused by jsonb
        try:
            json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "it contains a lone UTF-16 surrogate, which jsonb cannot store"
            ) from None
    return text


def check_text_value(text: str, what: str) -> str:
    """``text`` if PostgreSQL's ``text`` can store it; ``ValueError`` naming ``what`` (a NUL
    character, a lone surrogate) otherwise."""
    if "\x00" in text:
        raise ValueError(f"the {what} contains a NUL character, which text cannot store")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"the {what} contains a lone UTF-16 surrogate") from None
    return text

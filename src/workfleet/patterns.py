"""Type patterns: how ``billing.%`` selects run types, in Python and as SQL ``LIKE`` data.

A pattern is either an exact type (``billing.invoice.v1``) or a literal prefix followed by one
trailing ``%`` (``billing.%``; a lone ``%`` matches every type). Every other character, including
``_``, ``%`` in the middle, quotes and ``;``, is matched literally. Patterns only ever reach SQL as
bound parameters, escaped for ``LIKE``, never as SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_LIKE_ESCAPES = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
MAX_PATTERN_LENGTH = 200


@dataclass(frozen=True, slots=True, order=True)
class TypePattern:
    """A parsed pattern: a literal ``prefix``, and whether a trailing ``%`` follows it."""

    prefix: str
    wildcard: bool

    @classmethod
    def parse(cls, text: str) -> TypePattern:
        """Parse ``text``; raise ``ValueError`` naming the problem for empty or control input."""
        if not text or not text.strip():
            raise ValueError("a type pattern must not be empty")
        if len(text) > MAX_PATTERN_LENGTH:
            raise ValueError(f"a type pattern must be at most {MAX_PATTERN_LENGTH} characters")
        if any(ord(ch) < 32 for ch in text):
            raise ValueError("a type pattern must not contain control characters")
        if text.endswith("%"):
            return cls(text[:-1], True)
        return cls(text, False)

    def __str__(self) -> str:
        return self.prefix + "%" if self.wildcard else self.prefix

    def matches(self, run_type: str) -> bool:
        if self.wildcard:
            return run_type.startswith(self.prefix)
        return run_type == self.prefix

    def like(self) -> str:
        """This pattern as a ``LIKE`` operand (default escape character ``\\``)."""
        escaped = self.prefix.translate(_LIKE_ESCAPES)
        return escaped + "%" if self.wildcard else escaped

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: exact types beat prefixes, longer prefixes beat shorter ones."""
        return (0 if self.wildcard else 1, len(self.prefix))

    def intersect(self, other: TypePattern) -> TypePattern | None:
        """The pattern matching exactly the types both match, or None when they are disjoint."""
        if not self.wildcard:
            return self if other.matches(self.prefix) else None
        if not other.wildcard:
            return other if self.matches(other.prefix) else None
        if self.prefix.startswith(other.prefix):
            return self
        if other.prefix.startswith(self.prefix):
            return other
        return None


def claim_filter(
    loop: TypePattern, executors: Iterable[TypePattern]
) -> tuple[list[str], list[str]]:
    """Split what a lease loop may claim into (exact types, LIKE patterns).

    The result is the loop's pattern intersected with each executor pattern, so a loop never
    claims a type no executor can run. Redundant patterns are dropped to keep the SQL small.
    """
    parts = {p for e in executors if (p := loop.intersect(e)) is not None}
    prefixes = sorted(p for p in parts if p.wildcard)
    # drop prefixes covered by a shorter prefix, and exact types covered by any prefix
    kept: list[TypePattern] = []
    for p in sorted(prefixes, key=lambda x: len(x.prefix)):
        if not any(p.prefix.startswith(k.prefix) for k in kept):
            kept.append(p)
    exact = sorted(
        p.prefix for p in parts if not p.wildcard and not any(k.matches(p.prefix) for k in kept)
    )
    return exact, [k.like() for k in kept]


def best_match(run_type: str, patterns: Iterable[TypePattern]) -> TypePattern | None:
    """The most specific pattern matching ``run_type`` (exact, then the longest prefix)."""
    matching = [p for p in patterns if p.matches(run_type)]
    return max(matching, key=lambda p: p.specificity) if matching else None

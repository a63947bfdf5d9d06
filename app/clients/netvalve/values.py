"""Readers for single values in NetValve's JSON, which may be missing or of the wrong type.

Each returns the typed value or None, never raises: a field that lies is a field we did not get.
"""

from decimal import Decimal
from urllib.parse import urlsplit

MAX_BIGINT = 2**63 - 1


def as_int(value: object) -> int | None:
    """A NetValve id, which arrives as a JSON integer or as a digit string; None otherwise.

    Ids are positive and fit PostgreSQL's BIGINT; anything else cannot be one (and would fail
    to bind). Only ASCII digits count: "²".isdigit() is true, but int("²") raises."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 < value <= MAX_BIGINT:
        return value
    return None


def as_decimal(value: object) -> Decimal | None:
    """A finite decimal from a JSON number or a numeric string; None otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() else None


def as_text(value: object) -> str | None:
    """A non-empty JSON string; None for anything else (a number where text belongs included)."""
    return value if isinstance(value, str) and value else None


def as_url(value: object) -> str | None:
    """An absolute http(s) URL. It ends up in a browser (a script tag, a redirect), where a
    `javascript:` or relative value from a lying answer must never land."""
    text = as_text(value)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
    except ValueError:
        return None
    return text if parts.scheme in ("http", "https") and parts.hostname else None


def text_or_none(value: object) -> str | None:
    """Any present scalar as text: codes and messages NetValve sometimes sends as numbers."""
    return str(value) if value not in (None, "") else None

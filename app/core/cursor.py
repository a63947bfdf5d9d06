"""Opaque keyset cursors for the newest-first listings: a row's timestamp and id, base64."""

import base64
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from app.core.errors import AppError

R = TypeVar("R")


class InvalidCursor(AppError):
    """The cursor is not one this API handed out."""

    status_code = 400
    message = "The cursor is not valid."


def encode_cursor(stamp: datetime, row_id: uuid.UUID) -> str:
    raw = f"{stamp.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        text, _, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        stamp = datetime.fromisoformat(text)
        if stamp.tzinfo is None:
            raise ValueError(text)
        # A forged time such as 0001-01-01T00:00:00+23:59 has no UTC equivalent (OverflowError).
        return stamp.astimezone(UTC), uuid.UUID(row_id)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidCursor from None


def split_page(
    rows: Sequence[R], limit: int, stamp: Callable[[R], datetime], row_id: Callable[[R], uuid.UUID]
) -> tuple[Sequence[R], str | None]:
    """A page of `limit` rows from a listing asked for `limit + 1`, and the cursor of the next
    page (None when the extra row is absent, i.e. this is the last page)."""
    page = rows[:limit]
    more = len(rows) > limit and len(page) > 0
    return page, encode_cursor(stamp(page[-1]), row_id(page[-1])) if more else None

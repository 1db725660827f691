"""Keyset pagination shared by every list: ``{items, next_cursor}``, ``?limit=`` up to 100."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter
from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from server.errors import InvalidInput

T = TypeVar("T")

Limit = Annotated[int, Parameter(ge=1, le=100, description="Page size (1-100)")]
Cursor = Annotated[
    str | None, Parameter(max_length=200, description="next_cursor of the previous page")
]


class PageOf(msgspec.Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = f"{created_at.isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


MAX_BIGINT = 2**63 - 1


def _invalid_cursor() -> InvalidInput:
    return InvalidInput("The cursor is not valid", code="INVALID_CURSOR")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, raw id) of a cursor. The time must carry an offset and stay within
    the years 1..9999 once converted to UTC (what PostgreSQL and Python can compare)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp_text, _, row_id = raw.partition("|")
        stamp = datetime.fromisoformat(stamp_text)
        if stamp.tzinfo is None or stamp.utcoffset() is None:
            raise ValueError("naive cursor time")
        stamp = stamp.astimezone(UTC)
    except (ValueError, UnicodeDecodeError, OverflowError):
        raise _invalid_cursor() from None
    return stamp, row_id


def cursor_id(raw_id: str, python_type: type) -> Any:
    """The typed row id of a cursor: a UUID, or an integer that fits a bigint."""
    try:
        if python_type is uuid.UUID:
            return uuid.UUID(raw_id)
        value = int(raw_id)
    except (ValueError, TypeError):
        raise _invalid_cursor() from None
    if not -MAX_BIGINT - 1 <= value <= MAX_BIGINT:
        raise _invalid_cursor()
    return value


def after_cursor(
    query: Select[Any],
    created_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: str,
    *,
    newest_first: bool = False,
) -> Select[Any]:
    """``query`` restricted to the rows after ``cursor`` in ``(created_at, id)`` order (or
    before it, when the list runs newest first)."""
    stamp, raw_id = decode_cursor(cursor)
    try:
        python_type = id_col.type.python_type
    except NotImplementedError:
        raise _invalid_cursor() from None
    typed_id = cursor_id(raw_id, python_type)
    if newest_first:
        return query.where(or_(created_col < stamp, and_(created_col == stamp, id_col < typed_id)))
    return query.where(or_(created_col > stamp, and_(created_col == stamp, id_col > typed_id)))


async def paginate(
    session: AsyncSession,
    query: Select[Any],
    created_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    limit: int,
    cursor: str | None,
    *,
    newest_first: bool = False,
) -> Page[Any]:
    """Oldest first, stable under inserts: ``(created_at, id) > cursor``; or newest first
    (``newest_first``): ``(created_at, id) < cursor``, in descending order."""
    if cursor:
        query = after_cursor(query, created_col, id_col, cursor, newest_first=newest_first)
    order = (created_col.desc(), id_col.desc()) if newest_first else (created_col, id_col)
    rows = list((await session.scalars(query.order_by(*order).limit(limit + 1))).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_col.key), getattr(last, id_col.key))
    return Page(items=rows, next_cursor=next_cursor)

"""Keyset pagination shared by every list: ``{items, next_cursor}``, ``?limit=`` up to 100."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime
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


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        return datetime.fromisoformat(stamp), row_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The cursor is not valid", code="INVALID_CURSOR") from None


async def paginate(
    session: AsyncSession,
    query: Select[Any],
    created_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    limit: int,
    cursor: str | None,
) -> Page[Any]:
    """Oldest first, stable under inserts: ``(created_at, id) > cursor``."""
    if cursor:
        stamp, row_id = decode_cursor(cursor)
        try:
            typed_id: Any = (
                uuid.UUID(row_id) if id_col.type.python_type is uuid.UUID else int(row_id)
            )
        except (ValueError, NotImplementedError):
            raise InvalidInput("The cursor is not valid", code="INVALID_CURSOR") from None
        query = query.where(or_(created_col > stamp, and_(created_col == stamp, id_col > typed_id)))
    rows = list((await session.scalars(query.order_by(created_col, id_col).limit(limit + 1))).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(getattr(last, created_col.key), getattr(last, id_col.key))
    return Page(items=rows, next_cursor=next_cursor)

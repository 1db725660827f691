"""Constrained types shared by every request schema and string parameter.

PostgreSQL ``text`` and ``jsonb`` cannot store NUL, so a NUL in any request string must be a
422 at the edge, never a database error. Datetimes in requests must carry an offset, and
stay far enough from year 9999 that adding a term to them cannot overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar.params import Parameter

from server.errors import InvalidInput

NO_NUL = r"^[^\x00]*$"
"""Any text without NUL (PostgreSQL cannot store it)."""
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
"""Single-line text: no NUL, no other C0 control character, no DEL."""

SafeStr = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
"""A request string PostgreSQL can store; add length limits with another ``Meta``."""
Line = Annotated[str, msgspec.Meta(pattern=NO_CONTROL)]
"""A single-line request string (names, e-mail addresses)."""

MAX_YEAR = 9000
"""Request datetimes stay before this year, so a term of days can be added safely."""

AwareDateTime = Annotated[
    datetime,
    msgspec.Meta(tz=True, description="RFC 3339 with an offset, e.g. 2027-01-31T00:00:00Z"),
]


def check_datetime(value: datetime, field: str) -> datetime:
    """Refuse a naive datetime or one at or beyond ``MAX_YEAR`` (422 DATE_OUT_OF_RANGE)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field}: needs a UTC offset", code="DATE_OUT_OF_RANGE")
    try:
        year = value.astimezone(UTC).year
    except OverflowError:
        year = 10_000
    if year >= MAX_YEAR:
        raise InvalidInput(f"{field}: must be before the year {MAX_YEAR}", code="DATE_OUT_OF_RANGE")
    return value


def query_text(max_length: int, description: str | None = None) -> Any:
    """A string query or path parameter without NUL, at most ``max_length`` characters."""
    return Parameter(max_length=max_length, pattern=NO_NUL, description=description)

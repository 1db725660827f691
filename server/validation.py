"""Constrained types shared by every request schema and string parameter, and the rules
every JSON request body is held to before a schema sees it.

A body that is not valid UTF-8 or nests deeper than ``MAX_JSON_DEPTH`` is a 400
``MALFORMED_JSON`` (``JsonRequest``), like any other JSON that cannot be decoded.
PostgreSQL ``text`` and ``jsonb`` cannot store NUL, so a NUL in any request string must be a
422 at the edge, never a database error. Datetimes in requests must carry an offset, and
stay far enough from year 9999 that adding a term to them cannot overflow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, get_args

import msgspec
from litestar import Request
from litestar.exceptions import SerializationException, ValidationException
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
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No request datetime is earlier: the API has no use for one, and year 1 reaches
PostgreSQL as ``-infinity``."""
LATEST = datetime(MAX_YEAR, 1, 1, tzinfo=UTC)
"""Request datetimes are strictly before this."""

AwareDateTime = Annotated[
    datetime,
    msgspec.Meta(
        tz=True,
        description=(
            "RFC 3339 with an offset, e.g. 2027-01-31T00:00:00Z; "
            f"from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)"
        ),
    ),
]
"""The type of every request datetime. Its range is enforced by ``DatedRequest``, the base of
every request schema that has one (msgspec cannot bound a datetime by itself)."""


def datetime_problem(value: datetime) -> str | None:
    """Why ``value`` is not an acceptable request datetime, or ``None`` when it is."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "needs a UTC offset"
    try:
        in_range = EARLIEST <= value < LATEST
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00, before datetime.min in UTC
        in_range = False
    if not in_range:
        return f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)"
    return None


def check_datetime(value: datetime, field: str) -> datetime:
    """Refuse a naive datetime or one outside [``EARLIEST``, ``LATEST``) (422 DATE_OUT_OF_RANGE):
    for dates a service computes (a renewal) or receives from outside the HTTP API."""
    if problem := datetime_problem(value):
        raise InvalidInput(f"{field}: {problem}", code="DATE_OUT_OF_RANGE")
    return value


class DatedRequest(msgspec.Struct):
    """Base of the request schemas with datetime fields (``AwareDateTime``): decoding one with
    a datetime out of range is a 422 ``VALIDATION_ERROR`` naming the field, before any service
    or the database sees it."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime) and (problem := datetime_problem(value)):
                # Not a ValueError: msgspec would reword it without the field's name.
                raise InvalidInput(
                    f"{name}: {problem}",
                    errors=[{"key": name, "message": problem, "source": "body"}],
                )


RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""A query parameter's datetime as written (a bare number is not a time)."""


def query_datetime(description: str) -> Any:
    """A datetime query parameter, taken as text in RFC 3339 form (``parse_query_datetime``)."""
    return Parameter(
        pattern=RFC3339,
        max_length=40,
        description=description,
        schema_extra={"format": "date-time"},
    )


def parse_query_datetime(value: str | None, name: str) -> datetime | None:
    """The datetime of a ``query_datetime`` parameter: 422 naming it when it is no date (a
    13th month) or out of range."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        parsed = None
    problem = "not an RFC 3339 date and time" if parsed is None else datetime_problem(parsed)
    if problem:
        raise InvalidInput(
            f"{name}: {problem}", errors=[{"key": name, "message": problem, "source": "query"}]
        )
    return parsed


def query_text(max_length: int, description: str | None = None) -> Any:
    """A string query or path parameter without NUL, at most ``max_length`` characters."""
    return Parameter(max_length=max_length, pattern=NO_NUL, description=description)


MAX_JSON_DEPTH = 32
"""Objects and arrays nested deeper than this are refused: no request of this API needs more,
and deep nesting only exhausts the stack of whatever walks the value next."""


def json_nesting_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether a decoded JSON value nests objects/arrays more than ``limit`` deep (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


_STRUCT_OF: dict[int, type[msgspec.Struct] | None] = {}
_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _body_struct(handler: Any) -> type[msgspec.Struct] | None:
    """The msgspec Struct a route handler's ``data`` is (``X`` or ``X | None``), or ``None``;
    worked out once per handler."""
    key = id(handler)
    if key not in _STRUCT_OF:
        struct = None
        field = handler.parsed_fn_signature.parameters.get("data") if handler else None
        if field is not None:
            candidates = [field.annotation, *get_args(field.annotation)]
            structs = [
                c for c in candidates if isinstance(c, type) and issubclass(c, msgspec.Struct)
            ]
            struct = structs[0] if len(structs) == 1 else None
        _STRUCT_OF[key] = struct
    return _STRUCT_OF[key]


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(item) for item in value]
    return value


def strict_body(handler: Any, value: Any) -> Any:
    """A request body as the handler's Struct, converted strictly: ``"1"`` is not an integer
    and ``1`` is not a string, as the OpenAPI document says (Litestar converts bodies
    leniently, as it must for query strings). A mismatch is a 422 naming the field."""
    struct = _body_struct(handler)
    if struct is None or value is None:
        return value
    try:
        try:
            return msgspec.convert(value, struct, strict=True)
        except msgspec.ValidationError as exc:
            if "got `float`" not in str(exc):
                raise
            # JSON has one number type: 3.0 is the integer 3 (JSON Schema says so too).
            return msgspec.convert(_integral_floats_as_ints(value), struct, strict=True)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        message = match.group("message") if match else str(exc)
        path = (match.group("path") if match else "") or ""
        key = path.lstrip(".").split(".")[0].split("[")[0] or "data"
        raise ValidationException(
            detail=f"{key}: {message}",
            extra=[{"key": key, "message": message, "source": "body"}],
        ) from None


class JsonRequest(Request):
    """Litestar's request, whose JSON body is refused as malformed (400 ``MALFORMED_JSON``)
    when it is not UTF-8 or nests too deeply, and is converted strictly to the route's body
    Struct (``strict_body``).

    msgspec raises ``UnicodeDecodeError`` for invalid UTF-8 inside a string and
    ``RecursionError`` for deep nesting; Litestar turns only ``msgspec.DecodeError`` into a
    client error, so without this both would be 500s with a traceback. Used for every route
    (``Litestar(request_class=JsonRequest)``)."""

    async def json(self) -> Any:
        try:
            value = await super().json()
        except UnicodeDecodeError:
            raise SerializationException("the body is not valid UTF-8") from None
        except RecursionError:
            raise SerializationException("the body nests too deeply") from None
        if isinstance(value, dict | list) and json_nesting_exceeds(value):
            raise SerializationException(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        return strict_body(self.scope.get("route_handler"), value)

"""The one mapping from errors to RFC 9457 problem details (``application/problem+json``).

Domain errors (``server.errors``) carry a stable ``code`` and no HTTP status; this module
gives each family its status, renders framework errors in the same shape, and documents the
problem responses in OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import msgspec
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from server.db.availability import is_database_unavailable
from server.errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidInput,
    LicenseRefused,
    NotFound,
    PermissionDenied,
    ProductMismatch,
    RateLimited,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("licentia.errors")


STATUS_BY_ERROR: Mapping[type[DomainError], int] = {
    BadRequest: 400,
    InvalidInput: 422,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    LicenseRefused: 403,
    ProductMismatch: 422,
    RateLimited: 429,
    Unavailable: 503,
}

HTTP_CODES: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def status_for(error: DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def _problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=status,
        title=title,
        detail=detail or "",
        type_="about:blank",
        headers=dict(headers) if headers else None,
        extra={"code": code, **extra},
    )


def domain_problem(error: DomainError) -> ProblemDetailsException:
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return _problem(
        status_for(error), error.code, error.title, error.detail, headers=headers, **error.extra
    )


def _validation_errors(error: ValidationException) -> list[dict[str, Any]]:
    extra = error.extra if isinstance(error.extra, list) else []
    errors = [
        {k: v for k, v in item.items() if k in ("key", "message", "source")}
        for item in extra
        if isinstance(item, dict)
    ]
    for item in errors:
        if item.get("key") == "data" and item.get("message") == "'data'":
            # Litestar's KeyError when a route that needs a body got none.
            item["message"] = "a JSON body is required"
    return errors


def _is_malformed_body(error: ValidationException, errors: list[dict[str, Any]]) -> bool:
    text = (str(error.detail) + " " + " ".join(str(e.get("message", "")) for e in errors)).lower()
    return "malformed" in text or "json is malformed" in text or "invalid json" in text


def http_problem(error: HTTPException) -> ProblemDetailsException:
    if isinstance(error, ProblemDetailsException):
        return error
    if isinstance(error, ValidationException):
        errors = _validation_errors(error)
        if _is_malformed_body(error, errors):
            return _problem(400, "MALFORMED_JSON", "Malformed JSON", "The body is not valid JSON")
        first = errors[0] if errors else {}
        summary = (
            f"{first.get('key')}: {first.get('message', 'invalid value')}"
            if first.get("key")
            else str(first.get("message") or error.detail)
        )
        return _problem(422, "VALIDATION_ERROR", "Invalid input", summary, errors=errors)
    status = error.status_code
    if type(error) is ClientException and status == 400:
        # Litestar raises a bare ClientException when the body cannot be decoded.
        return _problem(
            400, "MALFORMED_JSON", "Malformed JSON", f"The body is not valid JSON: {error.detail}"
        )
    if status >= 500:
        return _problem(status, HTTP_CODES.get(status, "INTERNAL_ERROR"), "Internal server error")
    title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}.get(
        status, "Request failed"
    )
    return _problem(
        status,
        HTTP_CODES.get(status, f"HTTP_{status}"),
        title,
        str(error.detail),
        headers=error.headers,
    )


# character_not_in_repertoire (a NUL in text), untranslatable_character (\u0000 in jsonb)
INVALID_CHARACTER_STATES = frozenset({"22021", "22P05"})


def sqlstate_of(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE behind ``error``: walks ``.orig`` (SQLAlchemy's wrapper),
    ``__cause__`` and ``__context__`` to the driver's exception (asyncpg's ``sqlstate``)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str):
            return state
        orig = getattr(current, "orig", None)
        pending.extend(
            [current.__context__, current.__cause__]
            + ([orig] if isinstance(orig, BaseException) else [])
        )
    return None


def unexpected_problem(error: Exception) -> ProblemDetailsException:
    if sqlstate_of(error) in INVALID_CHARACTER_STATES:
        # A backstop: request schemas refuse NUL, so reaching this is a missed field.
        log.warning("text the database cannot store reached it: %s", type(error).__name__)
        return _problem(
            422,
            "INVALID_CHARACTERS",
            "Invalid input",
            "The request contains characters that cannot be stored (such as NUL)",
        )
    if is_database_unavailable(error):
        log.warning("database unavailable: %s", type(error).__name__)
        return domain_problem(Unavailable("The database is unavailable; try again shortly"))
    log.error("unhandled error", exc_info=error)
    return _problem(
        500,
        "INTERNAL_ERROR",
        "Internal server error",
        "An unexpected error occurred; it has been logged",
    )


def problem_for(error: Exception) -> ProblemDetailsException:
    """The problem any error becomes (the pages render the same mapping as HTML)."""
    if isinstance(error, DomainError):
        return domain_problem(error)
    if isinstance(error, HTTPException):
        return http_problem(error)
    return unexpected_problem(error)


class Problem(msgspec.Struct):
    """RFC 9457 problem details, as every error of this API is rendered."""

    status: int
    title: str
    detail: str
    code: str
    type: str = "about:blank"


_DESCRIPTIONS = {
    400: "Malformed request (not JSON)",
    401: "Missing or invalid credentials",
    403: "Missing scope or role, or the license cannot be used",
    404: "No such resource (or it belongs to another organization)",
    409: "Conflict with the current state",
    422: "Invalid input",
    429: "Too many requests (see Retry-After)",
    503: "Temporarily unavailable (see Retry-After)",
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem+json errors a route can answer.

    400 is always listed: it replaces the plain-JSON "validation exception" Litestar would
    otherwise document for routes with parameters (ours are problem details, like every
    error)."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_DESCRIPTIONS.get(status, "Error"),
            media_type="application/problem+json",
        )
        for status in sorted({400, *statuses})
    }


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Litestar's RFC 9457 plugin, with our one mapping for every error family."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={
                DomainError: domain_problem,
                HTTPException: http_problem,
                Exception: unexpected_problem,
            }
        )
    )

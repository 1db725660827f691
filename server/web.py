"""What the console and the portal share: templates, static files, security headers, CSRF,
and server-side sessions in PostgreSQL.

A session is a random cookie value; the database keeps only its SHA-256 (``web_sessions``),
so every worker and replica sees a sign-out at once, and a stolen database copy holds no
usable cookie. Each area (``console``, ``portal``) has its own cookie, path and CSRF cookie.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp, ExceptionHandlersMap, Message, Receive, Scope, Send
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.client_address import forwarded_https, trusted_networks
from server.errors import DomainError, InvalidInput, Unauthenticated
from server.models import WebSession
from server.problems import problem_for

Area = Literal["console", "portal"]
T = TypeVar("T")
HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
SESSION_TTL = timedelta(hours=12)

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-frame-options": b"DENY",
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"same-origin",
    b"cache-control": b"no-store",
}


# --- templates and static files ----------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _day(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d") if value else "never"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    def configure(engine: JinjaTemplateEngine) -> None:
        engine.engine.filters["when"] = _when
        engine.engine.filters["day"] = _day
        engine.engine.globals["now"] = lambda: datetime.now(UTC)

    return TemplateConfig(
        directory=TEMPLATE_DIR, engine=JinjaTemplateEngine, engine_callback=configure
    )


def static_files_router() -> Router:
    """``/static``: htmx, the stylesheet and the pages' one script, served by Licentia
    itself (air-gapped installs have no CDN)."""
    return create_static_files_router(
        path="/static", directories=[STATIC_DIR], name="static", include_in_schema=False
    )


class SecurityHeadersMiddleware:
    """Every page: a Content-Security-Policy without inline script, no framing, no sniffing,
    not cached; cookies set over https get ``Secure``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = _over_https(scope)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name.decode()] = value.decode()
                if https:
                    cookies = headers.getall("set-cookie", [])
                    if cookies:
                        del headers["set-cookie"]
                        for cookie in cookies:
                            secure = "secure" in cookie.lower().split("; ")
                            headers.add("set-cookie", cookie if secure else cookie + "; Secure")
            await send(message)

        await self.app(scope, receive, wrapped)


def _over_https(scope: Scope) -> bool:
    """The socket's scheme, or a trusted proxy's ``X-Forwarded-Proto`` (``licentia serve``
    leaves uvicorn's own proxy handling off; ``LICENTIA_TRUSTED_PROXIES`` decides)."""
    if scope.get("scheme") == "https":
        return True
    client = scope.get("client")
    protos = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-proto"]
    if client is None or not protos:
        return False
    settings = scope["litestar_app"].state.settings
    return forwarded_https(client[0], protos, trusted_networks(settings.trusted_proxies))


def csrf_secret(key_encryption_key: bytes) -> str:
    return (
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"licentia csrf v1")
        .derive(key_encryption_key)
        .hex()
    )


def csrf_middleware(area: Area, secret: str) -> DefineMiddleware:
    """Litestar's double-submit CSRF check for every unsafe request of ``area``."""
    return DefineMiddleware(
        CSRFMiddleware,
        config=CSRFConfig(
            secret=secret,
            cookie_name=f"licentia_{area}_csrf",
            cookie_path=f"/{area}",
            cookie_httponly=True,
            cookie_samesite="lax",
            header_name="x-csrftoken",
        ),
    )


# --- sessions ----------------------------------------------------------------------------


def web_middleware(
    area: Area, to_principal: Callable[[SessionFacts], Any], csrf_secret: str
) -> list[Any]:
    """An area's middleware, outermost first: security headers, the session, CSRF."""
    return [
        SecurityHeadersMiddleware,
        DefineMiddleware(SessionMiddleware, area=area, to_principal=to_principal),
        csrf_middleware(area, csrf_secret),
    ]


def cookie_name(area: Area) -> str:
    return f"licentia_{area}"


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class SessionFacts:
    """Who a session belongs to, as it was opened."""

    area: Area
    subject_id: uuid.UUID
    organization_id: uuid.UUID | None
    role: str
    token_generation: int


async def open_session(session: AsyncSession, facts: SessionFacts) -> str:
    """A new session in the request's transaction; returns the cookie value (never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=_hash(token),
            area=facts.area,
            subject_id=facts.subject_id,
            organization_id=facts.organization_id,
            role=facts.role,
            token_generation=facts.token_generation,
            expires_at=datetime.now(UTC) + SESSION_TTL,
        )
    )
    await session.flush()
    return token


_FIND = text(
    "SELECT subject_id, organization_id, role, token_generation FROM web_sessions "
    "WHERE token_hash = :hash AND area = :area AND expires_at > now()"
)


async def find_session(engine: AsyncEngine, area: Area, token: str) -> SessionFacts | None:
    async with engine.connect() as connection:
        row = (await connection.execute(_FIND, {"hash": _hash(token), "area": area})).first()
    if row is None:
        return None
    return SessionFacts(area, row.subject_id, row.organization_id, row.role, row.token_generation)


async def end_session(session: AsyncSession, area: Area, token: str) -> None:
    await session.execute(
        delete(WebSession).where(WebSession.token_hash == _hash(token), WebSession.area == area)
    )


def session_cookie(area: Area, token: str) -> Cookie:
    return Cookie(
        key=cookie_name(area),
        value=token,
        path=f"/{area}",
        httponly=True,
        samesite="lax",
        max_age=int(SESSION_TTL.total_seconds()),
    )


def cleared_cookie(area: Area) -> Cookie:
    return Cookie(
        key=cookie_name(area), value="", path=f"/{area}", httponly=True, samesite="lax", max_age=0
    )


class SessionMiddleware:
    """Resolve the area's session cookie into the request's principal (``scope["user"]``,
    which the request transaction turns into the tenant and confirms), or ``None``."""

    def __init__(self, app: ASGIApp, area: Area, to_principal: Callable[[SessionFacts], Any]):
        self.app = app
        self.area = area
        self.to_principal = to_principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal = None
        if scope["type"] == "http":
            token = _cookie(scope, cookie_name(self.area))
            if token:
                facts = await find_session(
                    scope["litestar_app"].state.side_engine, self.area, token
                )
                principal = self.to_principal(facts) if facts else None
            scope["user"] = principal
        await self.app(scope, receive, send)


def _cookie(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v or None
    return None


def session_token(request: Request, area: Area) -> str | None:
    return request.cookies.get(cookie_name(area)) or None


# --- responses ---------------------------------------------------------------------------


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def see_other(request: Request, path: str, cookies: list[Cookie] | None = None) -> Response[Any]:
    """After a form: a 303 to ``path`` (htmx follows it with ``HX-Redirect``)."""
    if is_htmx(request):
        return Response(content=b"", headers={"HX-Redirect": path}, cookies=cookies)
    return Redirect(path=path, status_code=303, cookies=cookies)


def page(
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    cookies: list[Cookie] | None = None,
) -> Template:
    return Template(
        template_name=name,
        context=dict(context or {}),
        status_code=status_code,
        cookies=cookies,
        media_type="text/html",
    )


def next_page(request: Request, cursor: str | None) -> str | None:
    """The link to the page after this one (the same filters, the service's cursor)."""
    if cursor is None:
        return None
    query = {k: v for k, v in request.query_params.items() if k != "cursor" and v}
    return f"{request.url.path}?{urlencode({**query, 'cursor': cursor})}"


def form_text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


JSON_FIELDS = frozenset({"features", "metadata"})


def form_struct(fields: Mapping[str, Any], type_: type[T]) -> T:
    """A request schema from form fields, validated exactly as the API's JSON body is: empty
    fields are left out, ``features``/``metadata`` are JSON text, a date (YYYY-MM-DD) in an
    ``..._at`` field is midnight UTC."""
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value == "":
            continue
        if name in JSON_FIELDS and isinstance(value, str):
            try:
                value = msgspec.json.decode(value)
            except msgspec.DecodeError:
                raise InvalidInput(f"{name}: not valid JSON", code="VALIDATION_ERROR") from None
        elif name.endswith("_at") and isinstance(value, str) and len(value) == 10:
            value += "T00:00:00+00:00"
        values[name] = value
    try:
        return msgspec.convert(values, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise InvalidInput(str(exc), code="VALIDATION_ERROR") from None


def refusal(problem: ProblemDetailsException) -> dict[str, Any]:
    """What a page shows of an error (``_error.html``): the status, title, detail and stable
    code the API gives (``server.problems.problem_for``)."""
    return {
        "status": problem.status_code,
        "title": problem.title,
        "detail": problem.detail,
        "code": problem.extra.get("code") if isinstance(problem.extra, dict) else None,
    }


def error_handlers(area: Area) -> ExceptionHandlersMap:
    """An area's exception handlers: every family the API maps, rendered as a page."""
    handle = error_handler(area)
    return {DomainError: handle, HTTPException: handle, Exception: handle}


def error_handler(area: Area) -> Callable[[Request, Exception], Response[Any]]:
    """Errors on a page: not signed in (or the session ended) goes to the area's sign-in;
    anything else is an error page with the status and stable code the API would give, or,
    for an htmx request, the message swapped into the page's message area."""

    def handle(request: Request, error: Exception) -> Response[Any]:
        if isinstance(error, Unauthenticated):
            login = f"/{area}/login"
            cookies = [cleared_cookie(area)]
            if is_htmx(request):
                return Response(content=b"", headers={"HX-Redirect": login}, cookies=cookies)
            return Redirect(path=login, status_code=303, cookies=cookies)
        problem = problem_for(error)
        context = {"area": area, **refusal(problem)}
        headers = dict(problem.headers or {})
        headers |= {k.decode(): v.decode() for k, v in SECURITY_HEADERS.items()}
        if is_htmx(request):
            headers |= {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"}
            return Template(
                template_name="_error.html",
                context=context,
                status_code=problem.status_code,
                headers=headers,
                media_type="text/html",
            )
        return Template(
            template_name="error.html",
            context=context,
            status_code=problem.status_code,
            headers=headers,
            media_type="text/html",
        )

    return handle

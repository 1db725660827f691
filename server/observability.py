"""Request ids, one access-log line per request, the headers every response carries, JSON
logs when not on a terminal."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.client_address import client_address, trusted_networks

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
client_ip_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "client_ip", default=None
)
access_log = logging.getLogger("licentia.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_REQUEST_ID_HEADER = b"x-request-id"
_NOSNIFF = (b"x-content-type-options", b"nosniff")
_NO_STORE = (b"cache-control", b"no-store")
_API_PREFIX = "/api/"


def current_request_id() -> str | None:
    return request_id_var.get()


def current_client_ip() -> str | None:
    return client_ip_var.get()


def _client_ip(scope: Scope) -> str | None:
    """The peer address; behind trusted proxies, the right-most untrusted X-Forwarded-For
    hop (see ``server.client_address``)."""
    client = scope.get("client")
    app = scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None) if app else None
    trusted = trusted_networks(tuple(getattr(settings, "trusted_proxies", ())))
    forwarded = (
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    )
    return client_address(client[0] if client else None, forwarded, trusted)


def _security_headers(path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``X-Content-Type-Options: nosniff`` on every response; ``Cache-Control: no-store`` on
    every API response whose handler chose no caching of its own.

    API answers carry secrets (license keys, API keys, refresh and signed tokens, idempotent
    replays of them) or one principal's data, so no browser or shared cache may keep one. The
    public JWKS, the OpenAPI document and health checks live outside ``/api/`` and keep their
    own caching."""
    names = {name.lower() for name, _ in headers}
    if _NOSNIFF[0] not in names:
        headers.append(_NOSNIFF)
    if path.startswith(_API_PREFIX) and _NO_STORE[0] not in names:
        headers.append(_NO_STORE)
    return headers


class RequestIdMiddleware:
    """Accept a sane ``X-Request-ID`` or make one; echo it; log the request once; add the
    headers every response carries (``_security_headers``). It wraps everything, so 404, 405
    and error responses get them too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        client_ip = _client_ip(scope)
        ip_token = client_ip_var.set(client_ip)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _security_headers(scope["path"], list(message.get("headers", [])))
                headers.append((_REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "client": client_ip,
                    },
                )
            request_id_var.reset(token)
            client_ip_var.reset(ip_token)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == _REQUEST_ID_HEADER:
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = request_id_var.get()
        if record.name == "licentia.access":
            line += f" {getattr(record, 'duration_ms', '?')}ms"
        return f"{line} [{request_id}]" if request_id else line


def configure_logging(level: str = "INFO", json_logs: bool | None = None) -> None:
    if json_logs is None:
        json_logs = not sys.stdout.isatty()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if json_logs else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "pgserver", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

"""Request ids, one access-log line per request, the headers every response carries, JSON
logs when not on a terminal."""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.client_address import ClientAddresses
from server.metrics import observe_request

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


def _client_ip(scope: Scope, addresses: ClientAddresses) -> str | None:
    """The peer address; behind trusted proxies, the right-most untrusted X-Forwarded-For
    hop (see ``server.client_address``)."""
    client = scope.get("client")
    forwarded = (
        value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"
    )
    return addresses(client[0] if client else None, forwarded)


_NOSNIFF_ONLY = (_NOSNIFF,)
_API_HEADERS = (_NOSNIFF, _NO_STORE)


def _with_headers(
    headers: Iterable[tuple[bytes, bytes]], extra: tuple[tuple[bytes, bytes], ...]
) -> list[tuple[bytes, bytes]]:
    """The response's headers plus the ones every response carries, unless the handler set
    them itself: ``X-Content-Type-Options: nosniff`` on every response, and ``Cache-Control:
    no-store`` on every API response whose handler chose no caching of its own.

    API answers carry secrets (license keys, API keys, refresh and signed tokens, idempotent
    replays of them) or one principal's data, so no browser or shared cache may keep one. The
    public JWKS, the OpenAPI document and health checks live outside ``/api/`` and keep their
    own caching."""
    result = list(headers)
    for header in extra:
        name = header[0]
        if not any(existing.lower() == name for existing, _ in result):
            result.append(header)
    return result


_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def _new_request_id() -> str:
    """A random 64-bit prefix per process and a counter (32 hex digits, like a UUID's):
    ``uuid.uuid4()`` would cost a ``getrandom`` system call per request."""
    return f"{_id_prefix}{next(_id_counter):016x}"


def _after_fork() -> None:
    global _id_prefix
    _id_prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_after_fork)


class _AccessLines:
    """The access log's JSON lines, written in batches.

    Through ``logging`` one line costs more than the framework's whole handling of a small
    request (a record, the formatter, a flush per line). With JSON logs configured by
    ``configure_logging`` the middleware formats the same line itself and this writes the
    lines of up to 50 ms at once (and at exit). With any other logging set-up, lines go
    through ``logging`` as before."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.scheduled = False
        atexit.register(self.flush)

    def add(self, line: str) -> None:
        self.lines.append(line)
        if not self.scheduled:
            self.scheduled = True
            try:
                asyncio.get_running_loop().call_later(0.05, self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self.scheduled = False
        lines, self.lines = self.lines, []
        if lines:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


_access_lines: _AccessLines | None = None


class _AccessEntry(msgspec.Struct):
    """One access-log line, the same members ``JsonFormatter`` writes for a record."""

    time: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    path: str
    status: int
    duration_ms: float
    client: str | None


_encode = msgspec.json.Encoder().encode
_clock_ms = -1
_clock_text = ""


def _timestamp() -> str:
    """The current time as the log writes it (milliseconds), formatted once per millisecond
    however many requests end in it."""
    global _clock_ms, _clock_text
    now = time.time()
    millisecond = int(now * 1000)
    if millisecond != _clock_ms:
        _clock_ms = millisecond
        _clock_text = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
    return _clock_text


def _log_access(
    request_id: str, scope: Scope, status: int, elapsed: float, client: str | None
) -> None:
    duration_ms = round(elapsed * 1000, 2)
    method, path = str(scope.get("method", "WEBSOCKET")), scope["path"]
    writer = _access_lines
    if not access_log.isEnabledFor(logging.INFO):
        return
    if writer is None:
        access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
            },
        )
        return
    entry = _AccessEntry(
        _timestamp(),
        "info",
        access_log.name,
        f"{method} {path} {status}",
        request_id,
        method,
        path,
        status,
        duration_ms,
        client,
    )
    writer.add(_encode(entry).decode())


class RequestIdMiddleware:
    """Accept a sane ``X-Request-ID`` or make one; echo it; log the request once; count it
    in the metrics when they are on (``server.metrics.observe_request``: by the route
    template Litestar's router left in the scope, never the raw path); add the headers every
    response carries (``_with_headers``). It wraps everything, so 404, 405 and error
    responses get them too."""

    def __init__(
        self, app: ASGIApp, trusted_proxies: Iterable[str] = (), *, metrics: bool = False
    ) -> None:
        self.app = app
        self.client_addresses = ClientAddresses(trusted_proxies)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or _new_request_id()
        token = request_id_var.set(request_id)
        client_ip = _client_ip(scope, self.client_addresses)
        ip_token = client_ip_var.set(client_ip)
        if "state" in scope:
            scope["state"]["request_id"] = request_id
        else:
            scope["state"] = {"request_id": request_id}
        started = time.perf_counter()
        status = 500
        extra_headers = _API_HEADERS if scope["path"].startswith(_API_PREFIX) else _NOSNIFF_ONLY

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = _with_headers(message.get("headers", ()), extra_headers)
                headers.append((_REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics:
                observe_request(
                    scope.get("path_template"), str(scope.get("method", "GET")), status, elapsed
                )
            _log_access(request_id, scope, status, elapsed, client_ip)
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
    global _access_lines
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if json_logs else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if _access_lines is not None:
        _access_lines.flush()
    _access_lines = _AccessLines(sys.stdout) if json_logs and not access_log.handlers else None
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "pgserver", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "litestar"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

"""What tests share besides fixtures: the test database's URLs, API helpers, and a real
``licentia serve`` in a subprocess. Fixtures live in conftest.py; tests import these
helpers from here (``from support import ...``), never from a conftest."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.crypto import SigningKey, compute_kid, raw_private_key, raw_public_key
from server.settings import Settings

T = TypeVar("T")

TEST_DB = f"licentia_test_{os.getpid()}"
APP_ROLE = "licentia_app"
APP_PASSWORD = "licentia-test-password"


@dataclass(frozen=True)
class TestDatabase:
    __test__ = False  # not a test class, despite the name

    admin_url: str  # superuser, maintenance database
    owner_url: str  # schema owner (runs migrations)
    app_url: str  # runtime role, subject to RLS
    database: str

    def sync(self, url: str) -> str:
        return url.replace("postgresql+asyncpg://", "postgresql://")


def with_credentials(
    url: str, *, user: str | None = None, password: str | None = None, db: str | None = None
) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    old_user, _, old_password = userinfo.partition(":")
    user = user if user is not None else old_user
    password = password if password is not None else old_password
    auth = f"{user}:{password}@" if password else f"{user}@"
    path = f"/{db}" if db is not None else parts.path
    return urlunsplit((parts.scheme, auth + hostport, path, parts.query, parts.fragment))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion; on a thread of its own when this one already runs an
    event loop (Playwright's synchronous API keeps one running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def make_api_key(settings: Settings, scopes: list[str]) -> str:
    from server.api_keys.service import create_api_key
    from server.cli_support import admin_session

    async def work() -> str:
        async with admin_session(settings) as session:
            return (await create_api_key(session, None, f"test-{secrets.token_hex(3)}", scopes)).key

    return run(work())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_id() -> str:
    return str(uuid.uuid4())


# --- a real `licentia serve` in a subprocess ----------------------------------------------


@dataclass
class LiveServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")}
    env.update(
        LICENTIA_DATABASE_URL=settings.database_url,
        LICENTIA_MIGRATION_DATABASE_URL=settings.migration_database_url or "",
        LICENTIA_KEY_ENCRYPTION_KEY=settings.key_encryption_key or "",
        LICENTIA_LOG_JSON="true",
    )
    env.update(extra)
    return env


def start_server(
    env: dict[str, str],
    log_path: Path,
    *,
    workers: int = 1,
    data_dir: Path | None = None,
    timeout: float = 60.0,
    new_session: bool = False,
) -> LiveServer:
    """``new_session``: the server leads a process group of its own, so a test can kill it
    and its workers at once (``kill_server``)."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    handle = log_path.open("ab")
    process = subprocess.Popen(
        args,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=str(log_path.parent),  # files the server writes (a first admin key) stay there
        start_new_session=new_session,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(base_url + "/health/ready", timeout=1).status_code == 200:
                return LiveServer(base_url, process, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in {timeout}s:\n{log_path.read_text(errors='replace')}")


def stop_server(server: LiveServer, timeout: float = 20.0) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


def kill_server(server: LiveServer) -> None:
    """``kill -9`` of a server started with ``new_session=True`` and all its workers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()


# --- keys ----------------------------------------------------------------------------------


def seeded_signing_key(seed: bytes) -> SigningKey:
    """The same Ed25519 signing key every run for ``seed`` (tokens that can be compared)."""
    private_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
    return SigningKey.from_raw(
        compute_kid(raw_public_key(private_key)), raw_private_key(private_key)
    )


# --- answers ---------------------------------------------------------------------------------


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with this status (and ``code``, when given); returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"], body
    if code is not None:
        assert body["code"] == code, body
    return body


def check_trust_material(
    answer: dict[str, Any], root_document: dict[str, Any], *, issuer: str
) -> dict[str, Any]:
    """Check an answer's token as a product that embeds only the root would, with the
    reference checker of docs/token-format.md "Root of trust"
    (tests/vectors/test_certificate_vectors.py): the answer's ``root_endorsements``, then
    its ``key_certificate`` (which must verify under the root and name the token's kid), then
    its ``key_revocations``; the token's kid must be certified and not revoked, its signature
    must verify under the certified key, and its ``iat`` lie in the certificate's window.
    Returns the token's claims; raises ``Refused`` (with the spec's error name) otherwise."""
    import base64
    import json

    from vectors.test_certificate_vectors import ReferenceTrust, Refused

    def segment(part: str) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(
            base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        )
        return decoded

    assert set(answer) >= {"token", "key_certificate", "key_revocations", "root_endorsements"}
    assert isinstance(answer["root_endorsements"], list)
    trust = ReferenceTrust(root_document, issuer=issuer)
    for endorsement in answer["root_endorsements"]:
        trust.add_root_endorsement(endorsement)
    certificate = answer["key_certificate"]
    assert isinstance(certificate, str), answer
    trust.add_key_certificate(certificate)
    if answer["key_revocations"] is not None:
        trust.add_key_revocations(answer["key_revocations"])
    token = answer["token"]
    head, payload, signature = token.split(".")
    kid = segment(head)["kid"]
    assert segment(certificate.split(".")[1])["sub"] == kid, "the certificate names another key"
    key, windows = trust.key_for(token)
    key.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        f"{head}.{payload}".encode("ascii"),
    )
    claims = segment(payload)
    if not any(nbf <= claims["iat"] <= exp for nbf, exp in windows):
        raise Refused("UnknownKey")
    return claims


# --- a webhook receiver on the loopback ------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread that records every POST. ``answer(received)``
    decides the status code (200 by default); a path ending in ``/slow`` sleeps
    ``slow_seconds`` first. Use as a context manager."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: Callable[[Received], int] = lambda _: 200
        self.slow_seconds = 30.0
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self.max_in_flight_per_id = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                msg_id = got.headers.get("webhook-id", "")
                with receiver._lock:
                    receiver._in_flight[msg_id] = receiver._in_flight.get(msg_id, 0) + 1
                    receiver.max_in_flight_per_id = max(
                        receiver.max_in_flight_per_id, receiver._in_flight[msg_id]
                    )
                try:
                    if self.path.endswith("/slow"):
                        time.sleep(receiver.slow_seconds)
                    status = receiver.answer(got)
                    with receiver._lock:
                        receiver.received.append(got)
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                finally:
                    with receiver._lock:
                        receiver._in_flight[msg_id] -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def of_type(self, kind: str, path: str | None = None) -> list[Received]:
        with self._lock:
            return [
                r
                for r in self.received
                if r.json()["type"] == kind and (path is None or r.path == path)
            ]

    def ids(self) -> set[str]:
        with self._lock:
            return {r.headers["webhook-id"] for r in self.received}


def wait_until(check: Callable[[], T], what: str, *, timeout: float = 60.0) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` otherwise. A
    bound on waiting for another process, not a timed assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


# --- web pages -------------------------------------------------------------------------------

STAFF_PASSWORD = "console-staff-pass-1729"


def make_staff(settings: Settings, email: str, role: str, password: str = STAFF_PASSWORD) -> str:
    """A staff account for the console; returns its id."""
    from server.cli_support import admin_session
    from server.console.service import create_staff

    async def work() -> str:
        async with admin_session(settings) as session:
            account = await create_staff(session, email=email, role=role, password=password)
            return str(account.id)

    return run(work())


def csrf_field(html: str) -> str:
    """The CSRF token a page's forms carry."""
    import re

    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def console_sign_in(client: Any, settings: Settings, role: str) -> str:
    """A new staff account of ``role`` (``<role>@vendor.test``) signed in to the console
    through its login form on a ``TestClient``; returns the session's CSRF token."""
    email = f"{role}@vendor.test"
    make_staff(settings, email, role)
    token = csrf_field(client.get("/console/login").text)
    response = client.post(
        "/console/login",
        data={"email": email, "password": STAFF_PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console"
    return token


def event_payload(settings: Settings, event_id: object) -> dict[str, Any]:
    """The body a webhook delivery of the event ``event_id`` carries (its rendering), decoded."""
    from sqlalchemy import select

    from server.cli_support import admin_session
    from server.models import WebhookEvent
    from server.webhooks import service

    async def work() -> bytes:
        async with admin_session(settings) as session:
            event = await session.scalar(select(WebhookEvent).where(WebhookEvent.id == event_id))
            assert event is not None
            return service.render(event)

    payload: dict[str, Any] = json.loads(run(work()))
    return payload


# --- metrics ---------------------------------------------------------------------------------

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> Samples:
    """A Prometheus text exposition as ``{(sample name, labels): value}``."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)

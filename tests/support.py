"""What tests share besides fixtures: the test database's URLs, API helpers, and a real
``licentia serve`` in a subprocess. Fixtures live in conftest.py; tests import these
helpers from here (``from support import ...``), never from a conftest."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
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
    return asyncio.run(coro)


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
) -> LiveServer:
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

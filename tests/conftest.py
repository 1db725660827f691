"""One real PostgreSQL for the whole test session, its schema built by Alembic.

``LICENTIA_TEST_DATABASE_URL`` (a superuser URL) selects an existing server; otherwise an
embedded pgserver instance is started in a temporary directory. Tests are isolated by
truncating every table after each test.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from litestar.testing import TestClient

from keys.crypto import new_kek_text
from server.settings import Settings, async_url

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


def _with(
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


def _start_embedded(base: Path) -> str:
    import pgserver

    server = pgserver.get_server(base / "pgdata", cleanup_mode="delete")
    return server.get_uri()


def _stop_embedded(base: Path) -> None:
    import pgserver

    pgserver.get_server(base / "pgdata", cleanup_mode="delete").cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def database() -> Iterator[TestDatabase]:
    # Not under pytest's tmp dirs: pytest prunes old ones, which can belong to a running run.
    embedded_dir = None
    admin_url = os.environ.get("LICENTIA_TEST_DATABASE_URL")
    if not admin_url:
        embedded_dir = Path(tempfile.mkdtemp(prefix="licentia-test-pg-"))
        admin_url = _start_embedded(embedded_dir)
    admin_url = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}"')
        conn.execute(f'CREATE DATABASE "{TEST_DB}"')
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            f"{verb} ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{APP_PASSWORD}'"
        )
    owner_url = _with(admin_url, db=TEST_DB)
    app_url = _with(admin_url, user=APP_ROLE, password=APP_PASSWORD, db=TEST_DB)
    from server.db.migrations import upgrade

    upgrade(async_url(owner_url))
    yield TestDatabase(admin_url=admin_url, owner_url=owner_url, app_url=app_url, database=TEST_DB)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    if embedded_dir is not None:
        _stop_embedded(embedded_dir)


TABLES = (
    "audit_events, activations, licenses, refresh_tokens, users, projects, tiers, products, "
    "organizations, signing_keys, api_keys, idempotency_keys, rate_limits"
)


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "database" in request.fixturenames:
        db: TestDatabase = request.getfixturevalue("database")
        with psycopg.connect(db.owner_url, autocommit=True) as conn:
            conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def kek_text() -> str:
    return new_kek_text()


@pytest.fixture
def settings(database: TestDatabase, kek_text: str) -> Settings:
    return Settings(
        database_url=async_url(database.app_url),
        migration_database_url=async_url(database.owner_url),
        key_encryption_key=kek_text,
        environment="test",
        log_json=True,
        db_pool_size=5,
    )


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def signing_key(settings: Settings) -> str:
    """Make sure an active signing key exists; return its kid."""
    from keys.crypto import parse_kek
    from server.cli_support import admin_session
    from server.signing_keys.service import ensure_active_key

    async def work() -> str:
        async with admin_session(settings) as session:
            await ensure_active_key(session, parse_kek(settings.key_encryption_key or ""))
            from sqlalchemy import text

            return (
                await session.execute(text("SELECT kid FROM signing_keys WHERE state='active'"))
            ).scalar_one()

    return run(work())


@pytest.fixture
def client(settings: Settings, signing_key: str) -> Iterator[TestClient]:
    from server.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin_key(settings: Settings) -> str:
    return make_api_key(settings, ["*"])


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
    import socket

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
    import subprocess
    import sys
    import time

    import httpx

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
        cwd=str(Path(__file__).resolve().parent.parent),
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
    import signal
    import subprocess

    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture
def live_server_factory(settings: Settings, signing_key: str, tmp_path: Path):
    """Start real `licentia serve` processes against the test database; stopped afterwards."""
    started: list[LiveServer] = []

    def factory(workers: int = 1, **env: str) -> LiveServer:
        server = start_server(
            server_env(settings, **env), tmp_path / f"server-{len(started)}.log", workers=workers
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        stop_server(server)

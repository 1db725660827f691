"""One real PostgreSQL for the whole test session, its schema built by Alembic.

``LICENTIA_TEST_DATABASE_URL`` (a superuser URL) selects an existing server; otherwise an
embedded pgserver instance is started in a temporary directory. Tests are isolated by
truncating every table after each test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import factories
import psycopg
import pytest
from licensing_data import Sql
from litestar.testing import TestClient
from support import (
    APP_PASSWORD,
    APP_ROLE,
    TEST_DB,
    LiveServer,
    Receiver,
    TestDatabase,
    make_api_key,
    run,
    server_env,
    start_server,
    stop_server,
    with_credentials,
)

from keys.crypto import new_kek_text
from server.settings import Settings, async_url


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
    owner_url = with_credentials(admin_url, db=TEST_DB)
    app_url = with_credentials(admin_url, user=APP_ROLE, password=APP_PASSWORD, db=TEST_DB)
    from server.db.migrations import upgrade

    upgrade(async_url(owner_url))
    yield TestDatabase(admin_url=admin_url, owner_url=owner_url, app_url=app_url, database=TEST_DB)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')
    if embedded_dir is not None:
        _stop_embedded(embedded_dir)


TABLES = (
    "audit_events, activations, licenses, refresh_tokens, users, projects, tiers, products, "
    "organizations, signing_keys, api_keys, idempotency_keys, rate_limits, trials, "
    "webhook_deliveries, webhook_events, webhook_endpoints, webhook_sequences, "
    "license_expiry_notices, staff_accounts, web_sessions, validation_counts, "
    "key_revocation_lists, key_certificates, root_keys, license_usage, license_users"
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
def licentia(
    settings: Settings, signing_key: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """``licentia ARGS...`` run in process (click's ``CliRunner``) against the test database,
    with a signing key; returns click's ``Result``."""
    from click.testing import CliRunner

    from server.cli import main

    monkeypatch.setenv("LICENTIA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LICENTIA_KEY_ENCRYPTION_KEY", settings.key_encryption_key or "")
    monkeypatch.delenv("LICENTIA_MIGRATION_DATABASE_URL", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def client(settings: Settings, signing_key: str) -> Iterator[TestClient]:
    from server.app import create_app

    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on the loopback (answers 200 unless told otherwise)."""
    with Receiver() as running:
        yield running


@pytest.fixture
def admin_key(settings: Settings) -> str:
    return make_api_key(settings, ["*"])


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


# --- things to test with (made by tests/factories.py) --------------------------------------


@pytest.fixture
def owner_db(database: TestDatabase) -> Iterator[psycopg.Connection]:
    """An autocommit connection as the schema owner: rows made or read past the API."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    factories.use_cheap_argon2(monkeypatch)


@pytest.fixture
def make_license(database: TestDatabase) -> Callable[..., factories.License]:
    """``make_license(product=..., tier=..., max_activations=..., ...)``: a license row for a
    new organization (or ``organization_id``), its product and tier made or updated to the
    terms given."""

    def make(
        *,
        product: str = factories.PRODUCT,
        tier: str = "pro",
        max_activations: int = 5,
        license_max_activations: int | None = None,
        tier_features: dict[str, Any] | None = None,
        offline_lease_days: int = 7,
        lease_grace_days: int = 7,
        max_deactivations_per_day: int = 50,
        organization_id: uuid.UUID | None = None,
        expiry_behavior: str = "restrict",
        is_trial: bool = False,
        self_serve_trials: bool = False,
        duration_days: int | None = None,
        meters: dict[str, Any] | None = None,
        **license_terms: Any,
    ) -> factories.License:
        terms = factories.Tier(
            max_activations=max_activations,
            expiry_behavior=expiry_behavior,
            is_trial=is_trial,
            self_serve_trials=self_serve_trials,
            duration_days=duration_days,
            features=factories.FEATURES if tier_features is None else tier_features,
            offline_lease_days=offline_lease_days,
            lease_grace_days=lease_grace_days,
            max_deactivations_per_day=max_deactivations_per_day,
            meters=meters or {},
        )
        # Its own connection each time: some tests take the database away in between.
        with psycopg.connect(database.owner_url, autocommit=True) as db:
            factories.product(db, product, {tier: terms})
            org = organization_id or factories.organization(db)
            return factories.license(
                db, org, product, tier, max_activations=license_max_activations, **license_terms
            )

    return make


@pytest.fixture
def sql(database: TestDatabase) -> Sql:
    return Sql(database)

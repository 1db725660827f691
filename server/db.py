"""Engine, the one-transaction-per-request session provider, and the tenant context."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from litestar import Request
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.auth.principal import Principal, confirm_user
from server.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

_SET_TENANT = text(
    "SELECT set_config('app.organization_id', :org, true), "
    "set_config('app.platform_admin', :platform, true)"
)


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 30},
        hide_parameters=True,  # error messages must never carry hashes, keys or e-mails
    )


def create_side_engine(settings: Settings) -> AsyncEngine:
    """A small pool for work a request does beside its own transaction (abuse counters,
    token-family revocation, the keyring's refresh). Requests hold a connection of the main
    pool while they wait for it, so it must never come from that same pool."""
    return create_async_engine(
        settings.database_url,
        pool_size=2,
        max_overflow=4,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 10},
        hide_parameters=True,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def provide_session(state: State, request: Request) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: commit after the handler, roll back on any error.

    Litestar runs the code after ``yield`` before the response is sent, so a failed commit
    turns into an error response and nothing promised to the client is lost.
    """
    session: AsyncSession = state.sessionmaker()
    try:
        await session.begin()
        principal = request.scope.get("user")
        if isinstance(principal, Principal):
            await set_tenant(session, principal.organization_id, platform_admin=principal.is_admin)
            if not principal.is_admin:
                await confirm_user(session, principal)
        yield session
    except BaseException:
        await session.rollback()
        raise
    else:
        await session.commit()
    finally:
        await session.close()


async def set_tenant(
    session: AsyncSession, organization_id: uuid.UUID | None, *, platform_admin: bool = False
) -> None:
    """Transaction-local tenant for row-level security (safe with pooled connections)."""
    await session.execute(
        _SET_TENANT,
        {
            "org": str(organization_id) if organization_id else "",
            "platform": "on" if platform_admin else "off",
        },
    )


# --- the product-facing hot path: a plain asyncpg pool ---------------------------------------


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _rollback_if_open(connection: asyncpg.Connection) -> None:
    """Pool reset: only an abandoned transaction needs undoing. The hot path keeps no session
    state (its tenant setting is transaction-local), so asyncpg's default reset (a round trip
    of RESET ALL, UNLISTEN, ... on every release) would be pure cost."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


async def create_hot_pool(settings: Settings) -> asyncpg.Pool:
    """Connections for the licensing routes, which products call far more than anything else.

    Measured on the benchmark machine, SQLAlchemy's pool and session cost about 300 µs of CPU
    per request around two statements that take about 125 µs; asyncpg's own pool, about 80."""
    return await asyncpg.create_pool(
        _plain_dsn(settings.database_url),
        min_size=1,
        max_size=settings.db_pool_size,
        timeout=5,
        command_timeout=30,
        reset=_rollback_if_open,
    )


@contextlib.asynccontextmanager
async def pooled_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on a connection of ``pool``: commit when the block ends, roll back on
    any error. What ``provide_connection`` gives each licensing request, and the CLI's
    offline activation."""
    async with pool.acquire(timeout=10) as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            yield connection
        except BaseException:
            # A lost connection cannot roll back; the pool discards it. Keep the real error.
            with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                await transaction.rollback()
            raise
        else:
            await transaction.commit()


async def provide_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """The same one-transaction-per-request rule as ``provide_session``, on a plain asyncpg
    connection: begin, hand it to the handler, commit after it (before the response is sent),
    roll back on any error."""
    async with pooled_transaction(state.hot_pool) as connection:
        yield connection


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached now (a 503, not a bug).

    Walks the cause chain (SQLAlchemy wraps the asyncpg error) looking for connection
    failures, pool exhaustion, and the SQLSTATEs a server sends while it shuts down, restarts,
    refuses connections (``ALLOW_CONNECTIONS false``) or is out of connection slots.
    """
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    unavailable_states = {"57P01", "57P02", "57P03", "53300", "53400"}
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (OperationalError, InterfaceError)) and getattr(
            current, "connection_invalidated", False
        ):
            return True
        if isinstance(
            current,
            (
                ConnectionError,
                asyncio.TimeoutError,
                OSError,
                PoolTimeoutError,
                asyncpg.exceptions.CannotConnectNowError,
                asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.AdminShutdownError,
                asyncpg.exceptions.TooManyConnectionsError,
                asyncpg.exceptions.InterfaceError,
                asyncpg.exceptions.PostgresConnectionError,
            ),
        ):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        state = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(state, str) and (
            state.startswith("08")
            or state in unavailable_states
            or (state == "55000" and "not currently accepting connections" in str(current))
        ):
            return True
        orig = getattr(current, "orig", None)
        current = (
            orig
            if isinstance(orig, BaseException) and id(orig) not in seen
            else current.__cause__ or current.__context__
        )
    return type(error).__name__ == "TimeoutError" and "QueuePool" in str(error)


# --- migrations -----------------------------------------------------------------------


def alembic_config(owner_url: str, app_role: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
    if app_role:
        config.cmd_opts = type("Opts", (), {"x": [f"app_role={app_role}"]})()
    return config


def upgrade(owner_url: str, revision: str = "head", app_role: str | None = None) -> None:
    command.upgrade(alembic_config(owner_url, app_role), revision)


def downgrade(owner_url: str, revision: str, app_role: str | None = None) -> None:
    command.downgrade(alembic_config(owner_url, app_role), revision)


@functools.cache
def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config("postgresql://")).get_current_head() or ""


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


# --- the runtime role must not be able to bypass row-level security -----------------------

_ROLE_CHECK = text(
    """
    SELECT r.rolname, r.rolsuper, r.rolbypassrls,
           (SELECT count(*) FROM pg_tables t
             WHERE t.schemaname = 'public'
               AND pg_has_role(current_user, t.tableowner, 'USAGE')) AS owned_tables
    FROM pg_roles r WHERE r.rolname = current_user
    """
)


class UnsafeRuntimeRole(Exception):
    """The runtime connection could bypass row-level security."""


async def check_runtime_role(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        row = (await connection.execute(_ROLE_CHECK)).one()
    problems = []
    if row.rolsuper:
        problems.append("is a superuser")
    if row.rolbypassrls:
        problems.append("has BYPASSRLS")
    if row.owned_tables:
        problems.append(f"owns (or can act as the owner of) {row.owned_tables} table(s)")
    if problems:
        raise UnsafeRuntimeRole(
            f"Refusing to start: the runtime database role {row.rolname!r} "
            + ", ".join(problems)
            + ", so row-level security would not isolate tenants. Connect "
            "LICENTIA_DATABASE_URL as a role that owns no table and has neither SUPERUSER nor "
            "BYPASSRLS, and run migrations through LICENTIA_MIGRATION_DATABASE_URL (the owner)."
        )

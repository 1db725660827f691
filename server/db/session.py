"""Engines, the one-transaction-per-request session provider, and the tenant context."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Protocol

from litestar import Request
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.settings import Settings

_SET_TENANT = text(
    "SELECT set_config('app.organization_id', :org, true), "
    "set_config('app.platform_admin', :platform, true)"
)


class TenantPrincipal(Protocol):
    """What the request transaction needs of the authenticated caller (the auth domain's
    principal): whose rows it may see, and a check that it still stands, run inside the
    transaction once the tenant is set."""

    @property
    def organization_id(self) -> uuid.UUID | None: ...

    @property
    def is_admin(self) -> bool: ...

    async def confirm(self, session: AsyncSession) -> None: ...


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
        principal: TenantPrincipal | None = request.scope.get("user")
        if principal is not None:
            await set_tenant(session, principal.organization_id, platform_admin=principal.is_admin)
            await principal.confirm(session)
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

"""The product-facing hot path's connections: a plain asyncpg pool, one transaction per
request (the same rule as the ORM session provider)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec

from server.settings import Settings

_JSONB_VERSION = b"\x01"
_encode_json = msgspec.json.encode
_decode_json = msgspec.json.decode


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _rollback_if_open(connection: asyncpg.Connection) -> None:
    """Pool reset: only an abandoned transaction needs undoing. The hot path keeps no session
    state (its tenant setting is transaction-local), so asyncpg's default reset (a round trip
    of RESET ALL, UNLISTEN, ... on every release) would be pure cost."""
    if connection.is_in_transaction():
        await connection.execute("ROLLBACK")


def _encode_jsonb(value: Any) -> bytes:
    return _JSONB_VERSION + _encode_json(value)


def _decode_jsonb(data: bytes) -> Any:
    return _decode_json(data[1:])


async def _init_connection(connection: asyncpg.Connection) -> None:
    """Once per connection: ``jsonb`` values in and out as Python objects (msgspec, binary
    format), so no statement passes or parses JSON text itself."""
    await connection.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


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
        init=_init_connection,
    )


@contextlib.asynccontextmanager
async def pooled_transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """One transaction on a connection of ``pool``: commit when the block ends, roll back on
    any error. The licensing routes that change state run their service call inside it (the
    commit happens before the handler returns, so before the response is sent: the same rule
    as ``provide_session``, without a generator dependency per request); so does the CLI's
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

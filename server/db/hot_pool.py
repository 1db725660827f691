"""The product-facing hot path's connections: a plain asyncpg pool, one transaction per
request (the same rule as the ORM session provider)."""

from __future__ import annotations

import asyncio
import collections
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


class Turns:
    """A counting semaphore that serves its waiters strictly in arrival order: a freed turn
    is handed to the oldest waiter, never taken by a caller that arrives meanwhile."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a turn if one is free and nobody waits for it."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a turn as it was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1


class FairPool(asyncpg.Pool):
    """asyncpg's pool, handing connections out first come, first served.

    asyncpg waits for a free connection on an ``asyncio.Queue``, whose waiters can be
    overtaken: a connection put back wakes the oldest waiter, but a request arriving before
    that waiter runs takes the connection, and the waiter queues again at the back. With more
    requests in flight than connections, some waited many turns: validate's p99 was 7x its
    p50 with 32 connections to wrk and 10 in the pool, and 2.3x with 8 (within the pool). A
    turn is taken before asking asyncpg, so its queue never has a waiter."""

    def __init__(self, *args: Any, max_size: int, **kwargs: Any) -> None:
        super().__init__(*args, max_size=max_size, **kwargs)
        self.turns = Turns(max_size)

    async def _acquire(self, timeout: float | None) -> Any:
        if not self.turns.try_acquire():  # the usual case under light load: no timer
            loop = asyncio.get_running_loop()
            started = loop.time()
            async with asyncio.timeout(timeout):
                await self.turns.acquire()
            if timeout is not None:
                timeout = max(0.0, timeout - (loop.time() - started))
        try:
            return await super()._acquire(timeout)
        except BaseException:
            self.turns.release()
            raise

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        if getattr(connection, "_con", None) is None:  # already released: asyncpg ignores it
            return await super().release(connection, timeout=timeout)
        try:
            return await super().release(connection, timeout=timeout)
        finally:
            self.turns.release()


async def create_hot_pool(settings: Settings) -> FairPool:
    """Connections for the licensing routes, which products call far more than anything else.

    Measured on the benchmark machine, SQLAlchemy's pool and session cost about 300 µs of CPU
    per request around two statements that take about 125 µs; asyncpg's own pool, about 80."""
    pool = FairPool(
        _plain_dsn(settings.database_url),
        min_size=1,
        max_size=settings.db_pool_size,
        timeout=5,
        command_timeout=30,
        reset=_rollback_if_open,
        init=_init_connection,
        # what asyncpg.create_pool passes by default (Pool itself has no defaults)
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
    )
    await pool
    return pool


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

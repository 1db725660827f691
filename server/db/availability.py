"""Whether an error means the database cannot be reached now (a 503, not a bug)."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached now (a 503, not a bug).

    Walks the cause chain (SQLAlchemy wraps the asyncpg error) looking for connection
    failures, pool exhaustion, and the SQLSTATEs a server sends while it shuts down, restarts,
    refuses connections (``ALLOW_CONNECTIONS false``) or is out of connection slots.
    """
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

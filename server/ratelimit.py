"""Fixed-window rate limits kept in PostgreSQL, so every worker and replica shares them.

A bucket is a short string naming what is limited (``login:ip:203.0.113.7``). Windows are
aligned on the database clock, so all processes agree on where a window starts. Each call is
one statement in its own transaction (or in the caller's connection when one is given), so a
count survives the rollback of the request that caused it.

- ``hit`` counts one event and says whether the bucket is now over its limit;
- ``check`` says whether one more event would be over the limit, without counting;
- ``release`` takes one event back (a login that turned out to be legitimate);
- ``cleanup`` deletes old windows (``hit`` already drops a bucket's previous windows when it
  opens a new one, so only buckets that never come back are left for it).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_WINDOW = "to_timestamp(floor(extract(epoch FROM clock_timestamp()) / :window) * :window)"
_RETRY_AFTER = (
    "ceil(extract(epoch FROM window_start) + :window - extract(epoch FROM clock_timestamp()))"
)

_HIT = text(
    f"""
    INSERT INTO rate_limits (bucket, window_start, hits)
    VALUES (:bucket, {_WINDOW}, 1)
    ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1
    RETURNING hits, window_start, {_RETRY_AFTER}::int AS retry_after
    """
)
_DROP_OLDER = text("DELETE FROM rate_limits WHERE bucket = :bucket AND window_start < :start")
_CHECK = text(
    f"""
    SELECT hits, {_RETRY_AFTER}::int AS retry_after FROM rate_limits
    WHERE bucket = :bucket AND window_start = {_WINDOW}
    """
)
_RELEASE = text(
    f"""
    UPDATE rate_limits SET hits = hits - 1
    WHERE bucket = :bucket AND window_start = {_WINDOW} AND hits > 0
    """
)
_CLEANUP = text(
    "DELETE FROM rate_limits WHERE window_start < clock_timestamp() - make_interval(secs => :age)"
)

MAX_BUCKET_LENGTH = 255


def bucket(kind: str, value: str) -> str:
    """A bucket name; long or personal values (e-mails) are replaced by a short digest."""
    digest = hashlib.sha256(value.encode()).hexdigest()[:32]
    name = f"{kind}:{digest}" if len(value) > 64 or "@" in value else f"{kind}:{value}"
    return name[:MAX_BUCKET_LENGTH]


@asynccontextmanager
async def _connection(target: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    if isinstance(target, AsyncEngine):
        async with target.begin() as connection:
            yield connection
    else:
        yield target


async def hit(
    target: AsyncEngine | AsyncConnection, bucket: str, limit: int, window_seconds: int
) -> int | None:
    """Count one event. Returns the seconds until the window ends when the count exceeds
    ``limit``, else ``None``. With an engine the count commits on its own transaction."""
    params = {"bucket": bucket, "window": window_seconds}
    async with _connection(target) as connection:
        row = (await connection.execute(_HIT, params)).one()
        if row.hits == 1:
            await connection.execute(_DROP_OLDER, {"bucket": bucket, "start": row.window_start})
    return max(1, row.retry_after) if row.hits > limit else None


async def check(
    target: AsyncEngine | AsyncConnection, bucket: str, limit: int, window_seconds: int
) -> int | None:
    """Without counting: the seconds to wait when one more event would exceed ``limit``."""
    params = {"bucket": bucket, "window": window_seconds}
    async with _connection(target) as connection:
        row = (await connection.execute(_CHECK, params)).first()
    if row is None or row.hits < limit:
        return None
    return max(1, row.retry_after)


async def release(target: AsyncEngine | AsyncConnection, bucket: str, window_seconds: int) -> None:
    """Take back one event of the current window (never below zero). With the caller's
    connection it commits or rolls back with the caller's transaction. An event counted
    just before a window boundary and released just after it comes off the new window."""
    params = {"bucket": bucket, "window": window_seconds}
    async with _connection(target) as connection:
        await connection.execute(_RELEASE, params)


async def cleanup(target: AsyncEngine | AsyncConnection, older_than_seconds: int = 3600) -> int:
    """Delete windows that started more than ``older_than_seconds`` ago; returns the count."""
    async with _connection(target) as connection:
        result = await connection.execute(_CLEANUP, {"age": float(older_than_seconds)})
    return result.rowcount or 0

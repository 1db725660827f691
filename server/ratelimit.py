"""Fixed-window rate limits kept in PostgreSQL, so every worker and replica shares them.

A bucket is a short string naming what is limited (``signup:ip:203.0.113.7``). Windows are
aligned on the database clock, so all processes agree on where a window starts. Each call is
one statement in its own transaction (or in the caller's connection when one is given), so a
count survives the rollback of the request that caused it.

- ``hit`` counts one event and says whether the bucket is now over its limit;
- ``check`` says whether one more event would be over the limit, without counting;
- ``cleanup`` deletes rows older than two days (``hit`` already drops a bucket's previous
  windows when it opens a new one, so only buckets that never come back are left for it).

Decisions that read several buckets and must count in all or none of them (the login limit)
use locked state instead: ``lock`` takes a transaction-scoped advisory lock per bucket (in
one order, so callers never deadlock) and reads each bucket's one row, which then holds a
count and one time: for a ``Backoff`` the last event, for a ``Window`` its start (a window
that opens at its first event, not on the clock). The caller decides and ``store``s the new
state before its transaction ends; whoever takes the same lock next sees it. ``read`` gives
the same state without the lock: enough to refuse, never to count.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.client_address import parse_address

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
_CLEANUP = text(
    "DELETE FROM rate_limits WHERE window_start < clock_timestamp() - make_interval(secs => :age)"
)

MAX_BUCKET_LENGTH = 255
KEEP_SECONDS = 2 * 24 * 3600
"""What ``cleanup`` keeps by default: longer than any window or back-off memory."""


def address_key(address: str) -> str:
    """What a per-address limit counts: an IPv4 address, or the /64 of an IPv6 one (the block
    one subscriber is usually given, so walking through it earns no fresh limits)."""
    parsed = parse_address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


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


async def cleanup(
    target: AsyncEngine | AsyncConnection, older_than_seconds: int = KEEP_SECONDS
) -> int:
    """Delete windows that started more than ``older_than_seconds`` ago; returns the count."""
    async with _connection(target) as connection:
        result = await connection.execute(_CLEANUP, {"age": float(older_than_seconds)})
    return result.rowcount or 0


# --- locked state: back-off and windows that open at their first event ---------------------

_LOCK_SPACE = 0x524C  # first key of the two-key advisory locks; the one-key space is apart
_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(:space, hashtext(name))) "
    "FROM unnest(CAST(:buckets AS text[])) AS name"  # in the array's (sorted) order
)
_READ = text(
    """
    SELECT name AS bucket, r.hits, r.window_start, clock_timestamp() AS now
    FROM unnest(CAST(:buckets AS text[])) AS name
    LEFT JOIN rate_limits r ON r.bucket = name
    ORDER BY r.window_start NULLS FIRST
    """
)
# One statement: rows whose time changed (or whose count is 0) are deleted and inserted
# anew, rows whose time stays are updated in place (never a delete and insert of one key).
_STORE = text(
    """
    WITH v AS (
        SELECT * FROM unnest(
            CAST(:buckets AS text[]), CAST(:ats AS timestamptz[]), CAST(:hits AS int[])
        ) AS v(bucket, at, hits)
    ),
    gone AS (
        DELETE FROM rate_limits r USING v
        WHERE r.bucket = v.bucket AND (v.hits <= 0 OR r.window_start <> v.at)
    ),
    kept AS (
        UPDATE rate_limits r SET hits = v.hits FROM v
        WHERE r.bucket = v.bucket AND v.hits > 0 AND r.window_start = v.at
    )
    INSERT INTO rate_limits (bucket, window_start, hits)
    SELECT bucket, at, hits FROM v
    WHERE hits > 0 AND NOT EXISTS (
        SELECT 1 FROM rate_limits r WHERE r.bucket = v.bucket AND r.window_start = v.at
    )
    """
)


@dataclass(frozen=True)
class State:
    """One bucket's count and time (``at``: a back-off's last event, a window's start)."""

    bucket: str
    count: int = 0
    at: datetime | None = None


@dataclass(frozen=True)
class Backoff:
    """``free`` events at once; after that each one waits for the one before it:
    ``base_seconds`` doubled per event past ``free``, at most ``max_seconds``. The count is
    forgotten ``forget_seconds`` after the last event."""

    free: int
    base_seconds: float
    max_seconds: float
    forget_seconds: float

    def count(self, state: State, now: datetime) -> int:
        if state.at is None or now - state.at >= timedelta(seconds=self.forget_seconds):
            return 0
        return state.count

    def delay(self, count: int) -> float:
        """How long the event after ``count`` events must wait for the last of them."""
        if count < self.free:
            return 0.0
        return min(self.max_seconds, self.base_seconds * 2.0 ** min(count - self.free, 62))

    def wait(self, state: State, now: datetime) -> float:
        """Seconds until one more event is allowed (0: now)."""
        count = self.count(state, now)
        if count < self.free or state.at is None:
            return 0.0
        return max(0.0, (state.at - now).total_seconds() + self.delay(count))

    def counted(self, state: State, now: datetime) -> State:
        return replace(state, count=self.count(state, now) + 1, at=now)

    def given_back(self, state: State, now: datetime) -> State:
        return replace(state, count=max(0, self.count(state, now) - 1))


@dataclass(frozen=True)
class Window:
    """At most ``limit`` events in ``seconds`` from the first one; then a new window opens."""

    limit: int
    seconds: float

    def count(self, state: State, now: datetime) -> int:
        if state.at is None or now - state.at >= timedelta(seconds=self.seconds):
            return 0
        return state.count

    def wait(self, state: State, now: datetime) -> float:
        if self.count(state, now) < self.limit or state.at is None:
            return 0.0
        return max(0.0, (state.at - now).total_seconds() + self.seconds)

    def counted(self, state: State, now: datetime) -> State:
        count = self.count(state, now)
        return replace(state, count=count + 1, at=state.at if count else now)

    def given_back(self, state: State, now: datetime) -> State:
        return replace(state, count=max(0, self.count(state, now) - 1))


def retry_after(seconds: float) -> int:
    """A wait as a ``Retry-After`` value: whole seconds, rounded up, 1 at least."""
    return max(1, math.ceil(seconds))


async def read(
    connection: AsyncConnection, buckets: Iterable[str], now: datetime | None = None
) -> tuple[dict[str, State], datetime]:
    """The state of ``buckets`` and the time to judge it by: ``now``, else the database
    clock (which every worker and replica shares). Without ``lock`` it may be stale by the
    time it is used: good enough to refuse, not to count."""
    states: dict[str, State] = {}
    clock: datetime | None = None
    for row in await connection.execute(_READ, {"buckets": sorted(set(buckets))}):
        clock = row.now
        if row.window_start is None:
            states.setdefault(row.bucket, State(row.bucket))
        else:  # ordered by time: the latest row wins
            states[row.bucket] = State(row.bucket, row.hits, row.window_start)
    return states, now or clock or datetime.now(UTC)


async def lock(
    connection: AsyncConnection, buckets: Iterable[str], now: datetime | None = None
) -> tuple[dict[str, State], datetime]:
    """Lock ``buckets`` until the end of ``connection``'s transaction, then ``read`` them:
    whoever takes the same lock next sees what this transaction ``store``s."""
    names = sorted(set(buckets))
    await connection.execute(_LOCK, {"space": _LOCK_SPACE, "buckets": names})
    return await read(connection, names, now)


async def store(connection: AsyncConnection, states: Iterable[State]) -> None:
    """Write the state of locked buckets (a count of 0 deletes one), in one statement."""
    rows = [s for s in states if s.at is not None or s.count <= 0]
    if rows:
        await connection.execute(
            _STORE,
            {
                "buckets": [s.bucket for s in rows],
                "ats": [s.at for s in rows],
                "hits": [s.count if s.at is not None else 0 for s in rows],
            },
        )

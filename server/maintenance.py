"""Housekeeping: drop rows whose purpose has passed (rate-limit windows, idempotency
records, expired refresh tokens and web sessions, validation counts older than 30 days).
Every worker runs it now and then; running it twice at once is harmless (plain deletes of
expired rows)."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server import ratelimit

log = logging.getLogger("licentia.maintenance")

_EXPIRED_IDEMPOTENCY = text("DELETE FROM idempotency_keys WHERE expires_at < now()")
_EXPIRED_SESSIONS = text("DELETE FROM web_sessions WHERE expires_at < now()")
_OLD_COUNTS = text("DELETE FROM validation_counts WHERE hour < now() - interval '30 days'")
_EXPIRED_REFRESH = text("DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'")
# Refresh tokens are a tenant table (row-level security): housekeeping acts for every
# tenant, as the admin CLI does, for this transaction only.
_EVERY_TENANT = text("SELECT set_config('app.platform_admin', 'on', true)")


@dataclass(frozen=True)
class Purged:
    rate_limit_windows: int
    idempotency_keys: int
    refresh_tokens: int
    web_sessions: int = 0
    validation_counts: int = 0


async def purge_expired(engine: AsyncEngine) -> Purged:
    windows = await ratelimit.cleanup(engine)
    async with engine.begin() as connection:
        idempotency = (await connection.execute(_EXPIRED_IDEMPOTENCY)).rowcount or 0
        sessions = (await connection.execute(_EXPIRED_SESSIONS)).rowcount or 0
        counts = (await connection.execute(_OLD_COUNTS)).rowcount or 0
        await connection.execute(_EVERY_TENANT)
        refresh = (await connection.execute(_EXPIRED_REFRESH)).rowcount or 0
    return Purged(windows, idempotency, refresh, sessions, counts)


async def run_periodically(engine: AsyncEngine, every_seconds: float = 600.0) -> None:
    """Purge at a jittered interval until cancelled; a failed round is logged, not fatal."""
    while True:
        await asyncio.sleep(every_seconds * random.uniform(0.5, 1.0))
        try:
            purged = await purge_expired(engine)
        except Exception as exc:  # the database may be away; try again next round
            log.warning("housekeeping failed: %s", type(exc).__name__)
            continue
        if any(vars(purged).values()):
            log.info("housekeeping", extra=vars(purged))

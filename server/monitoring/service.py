"""What the metrics read from the database: seats in use, licenses by status, and the
signing keys' times. One short transaction on the side pool, at most every 30 s across all
workers (``server.metrics.StatsStore``)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server import license_rules as rules
from server.metrics import DatabaseStats, StatsStore

log = logging.getLogger("licentia.monitoring")

# The figures span every tenant: this transaction, and only it, acts for all of them (as the
# housekeeping and the admin command line do).
_EVERY_TENANT = text("SELECT set_config('app.platform_admin', 'on', true)")
_SEATS = text(
    f"""
    SELECT count(*) FROM activations a
      JOIN licenses l ON l.id = a.license_id
      JOIN tiers t ON t.id = l.tier_id
     WHERE {rules.live_seat_sql("a", "t.lease_grace_days", ":now")}
    """
)
_LICENSES = text(
    f"SELECT {rules.license_status_sql('l', ':now')} AS status, count(*) AS n "
    "FROM licenses l GROUP BY 1"
)
_KEYS = text(
    """
    SELECT (SELECT activated_at FROM signing_keys WHERE state = 'active') AS activated_at,
           (SELECT min(activates_at) FROM signing_keys
             WHERE state = 'pending' AND activates_at > :now) AS next_activation
    """
)


def _seconds(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


async def read_stats(engine: AsyncEngine) -> DatabaseStats:
    now = rules.current_second()
    async with engine.begin() as connection:
        await connection.execute(_EVERY_TENANT)
        seats = (await connection.execute(_SEATS, {"now": now})).scalar_one()
        licenses = {row.status: row.n for row in await connection.execute(_LICENSES, {"now": now})}
        keys = (await connection.execute(_KEYS, {"now": now})).one()
    return DatabaseStats(
        read_at=time.time(),
        up=True,
        seats_in_use=int(seats),
        licenses_by_status=licenses,
        signing_key_activated_at=_seconds(keys.activated_at),
        next_key_activation_at=_seconds(keys.next_activation),
    )


async def current_stats(
    engine: AsyncEngine, store: StatsStore, timeout: float = 5.0
) -> DatabaseStats | None:
    """The last figures, read anew when they are due (the caller that claims the read does
    it; the others answer from the last one)."""
    now = time.time()
    if not store.claim(now):
        return store.load()
    try:
        stats = await asyncio.wait_for(read_stats(engine), timeout)
    except (
        Exception
    ) as exc:  # the database is away (or too slow to answer): say so, keep the last figures' values
        log.warning("metrics: the database does not answer: %s", type(exc).__name__)
        last = store.load()
        stats = DatabaseStats(
            read_at=last.read_at if last else now,
            up=False,
            seats_in_use=last.seats_in_use if last else None,
            licenses_by_status=last.licenses_by_status if last else {},
            signing_key_activated_at=last.signing_key_activated_at if last else None,
            next_key_activation_at=last.next_key_activation_at if last else None,
        )
    store.store(stats)
    return stats

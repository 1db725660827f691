"""How many validations each hour, for the console's chart, at no cost to the hot path.

Each process counts in memory (one dictionary increment per validation) and a background task
adds the counts to ``validation_counts`` every few seconds with one upsert, so a validation
never writes a row. Counts are safe to lose: a crash loses at most the last few seconds of a
chart, never a license decision. Every worker and replica adds to the same rows.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("licentia.usage")

FLUSH_SECONDS = 5.0

_ADD = text(
    "INSERT INTO validation_counts (hour, count) "
    "SELECT * FROM unnest(CAST(:hours AS timestamptz[]), CAST(:counts AS bigint[])) "
    "ON CONFLICT (hour) DO UPDATE SET count = validation_counts.count + excluded.count"
)


def _hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0)


class ValidationCounter:
    """Validations per hour, counted in this process until the next flush."""

    def __init__(self) -> None:
        self._hour = _hour(datetime.now(UTC))
        self._pending: dict[datetime, int] = {}
        self._current = 0

    def count(self) -> None:
        """One validation answered (the hot path: an integer increment)."""
        self._current += 1

    def _take(self, now: datetime) -> dict[datetime, int]:
        pending = self._pending
        if self._current:
            pending[self._hour] = pending.get(self._hour, 0) + self._current
        self._pending, self._current, self._hour = {}, 0, _hour(now)
        return pending

    async def flush(self, engine: AsyncEngine, now: datetime | None = None) -> int:
        """Add what was counted to the table; kept for the next flush if that fails."""
        taken = self._take(now or datetime.now(UTC))
        if not taken:
            return 0
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    _ADD, {"hours": list(taken), "counts": list(taken.values())}
                )
        except Exception:
            for hour, n in taken.items():
                self._pending[hour] = self._pending.get(hour, 0) + n
            raise
        return sum(taken.values())

    async def run(self, engine: AsyncEngine, every_seconds: float = FLUSH_SECONDS) -> None:
        """Flush every few seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(every_seconds)
                try:
                    await self.flush(engine)
                except Exception as exc:  # the database may be away; the counts wait
                    log.warning("validation counts not written: %s", type(exc).__name__)
        finally:
            try:
                await self.flush(engine)
            except Exception as exc:
                log.warning("validation counts lost at shutdown: %s", type(exc).__name__)

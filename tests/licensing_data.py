"""Reading rows back and moving time in the licensing tests: ``Sql`` (owner-connection SQL
for assertions and for ageing leases) and ``in_days``.

Licenses, products and organizations are made in tests/factories.py; the fixtures
(``make_license``, ``sql``) live in tests/conftest.py. ``make_license`` and ``sql`` are also
plain names here so that the imports written before that move keep working
(``from licensing_data import make_license, sql``): pytest takes fixtures from conftest.py
and ignores these.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from factories import license as make_license
from support import TestDatabase

__all__ = ["Sql", "in_days", "make_license", "sql"]


class Sql:
    """Owner-connection SQL for assertions and for moving time (e.g. leases) in tests."""

    def __init__(self, database: TestDatabase) -> None:
        self.url = database.owner_url

    def all(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def one(self, query: str, *params: Any) -> Any:
        rows = self.all(query, *params)
        return rows[0][0] if rows else None

    def live(self, license_id: uuid.UUID) -> int:
        return self.one(
            "SELECT count(*) FROM activations WHERE license_id = %s AND deactivated_at IS NULL",
            license_id,
        )


sql = Sql


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)

"""Housekeeping drops expired console and portal sessions and validation counts older than
30 days, and keeps the rest."""

from __future__ import annotations

import psycopg
from support import TestDatabase, run

from server.db.session import create_side_engine
from server.maintenance import purge_expired
from server.settings import Settings


def test_expired_sessions_and_old_counts_go(settings: Settings, database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        for name, expires in (("old", "now() - interval '1 minute'"), ("new", "now() + '1h'")):
            conn.execute(
                "INSERT INTO web_sessions (token_hash, area, subject_id, role, token_generation, "
                f"expires_at) VALUES (%s, 'console', gen_random_uuid(), 'admin', 0, {expires})",
                (name.encode(),),
            )
        conn.execute(
            "INSERT INTO validation_counts (hour, count) VALUES "
            "(date_trunc('hour', now() - interval '31 days'), 5), (date_trunc('hour', now()), 2)"
        )

    async def purge() -> object:
        engine = create_side_engine(settings)
        try:
            return await purge_expired(engine)
        finally:
            await engine.dispose()

    purged = run(purge())
    assert (purged.web_sessions, purged.validation_counts) == (1, 1)
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT token_hash FROM web_sessions").fetchall() == [(b"new",)]
        assert conn.execute("SELECT count FROM validation_counts").fetchall() == [(2,)]

"""Validations per hour: counted in memory, written every few seconds with one upsert, added
up across processes, kept when a write fails, written at shutdown."""

from __future__ import annotations

import psycopg
import pytest
from litestar.testing import TestClient
from support import TestDatabase, run

from server.db.session import create_side_engine
from server.product_licensing.usage import ValidationCounter
from server.settings import Settings


def total(database: TestDatabase) -> int:
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute("SELECT coalesce(sum(count), 0) FROM validation_counts").fetchone()
    return int(row[0])


def test_counts_add_up_across_processes(settings: Settings, database: TestDatabase) -> None:
    async def work() -> tuple[int, int]:
        engine = create_side_engine(settings)
        try:
            one, two = ValidationCounter(), ValidationCounter()
            for _ in range(5):
                one.count()
            for _ in range(3):
                two.count()
            written = await one.flush(engine) + await two.flush(engine)
            nothing = await one.flush(engine)  # nothing new counted: no statement
            return written, nothing
        finally:
            await engine.dispose()

    assert run(work()) == (8, 0)
    assert total(database) == 8


def test_a_failed_write_keeps_the_counts(settings: Settings, database: TestDatabase) -> None:
    unreachable = Settings(
        database_url=settings.database_url.replace(database.database, "no_such_database"),
        key_encryption_key=settings.key_encryption_key,
    )

    async def work() -> int:
        away, engine = create_side_engine(unreachable), create_side_engine(settings)
        try:
            counter = ValidationCounter()
            counter.count()
            counter.count()
            with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises
                await counter.flush(away)
            counter.count()
            return await counter.flush(engine)
        finally:
            await away.dispose()
            await engine.dispose()

    assert run(work()) == 3
    assert total(database) == 3


def test_validations_are_counted_and_written_at_shutdown(
    settings: Settings, signing_key: str, database: TestDatabase, make_license
) -> None:
    from server.app import create_app

    lic = make_license()
    with TestClient(create_app(settings)) as client:
        for _ in range(4):
            answer = client.post(
                "/api/v1/licenses/validate",
                json={"license_key": lic.key, "product": lic.product},
            )
            assert answer.status_code == 200
    assert total(database) == 4

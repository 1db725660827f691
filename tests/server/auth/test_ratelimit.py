"""The PostgreSQL fixed-window limiter, and the login limit across two worker processes."""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
from conftest import TestDatabase, run
from sqlalchemy.ext.asyncio import create_async_engine

from server import ratelimit
from server.settings import Settings

PASSWORD = "correct horse battery"


def fresh_minute(database: TestDatabase, margin: float = 20.0) -> None:
    """Windows are aligned on the database clock: count to a limit early in a window."""
    with psycopg.connect(database.owner_url) as conn:
        second = float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
    into = second % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.2)


def test_hit_check_and_cleanup(settings: Settings, database: TestDatabase) -> None:
    bucket = ratelimit.bucket("test", uuid.uuid4().hex)

    async def work() -> tuple[list[int | None], int | None, int | None, int]:
        one = create_async_engine(settings.database_url)
        two = create_async_engine(settings.database_url)  # a second "process"
        try:
            before = await ratelimit.check(one, bucket, 3, 3600)
            results = [await ratelimit.hit(e, bucket, 3, 3600) for e in (one, two, one, two)]
            after = await ratelimit.check(two, bucket, 3, 3600)
            removed = await ratelimit.cleanup(one, older_than_seconds=7200)
            return results, before, after, removed
        finally:
            await one.dispose()
            await two.dispose()

    results, before, after, removed = run(work())
    assert before is None
    assert results[:3] == [None, None, None]
    assert results[3] is not None and 1 <= results[3] <= 3600
    assert after is not None and 1 <= after <= 3600
    assert removed == 0  # the current window is kept
    with psycopg.connect(database.owner_url) as conn:
        assert (
            conn.execute("SELECT hits FROM rate_limits WHERE bucket = %s", (bucket,)).fetchone()[0]
            == 4
        )
        conn.execute("UPDATE rate_limits SET window_start = window_start - interval '3 hours'")
        conn.commit()

    async def later() -> tuple[int | None, int]:
        engine = create_async_engine(settings.database_url)
        try:
            # A new window opens and drops the bucket's older windows itself.
            fresh = await ratelimit.hit(engine, bucket, 3, 3600)
            return fresh, await ratelimit.cleanup(engine, older_than_seconds=7200)
        finally:
            await engine.dispose()

    fresh, removed = run(later())
    assert fresh is None
    assert removed == 0
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute("SELECT hits FROM rate_limits WHERE bucket = %s", (bucket,)).fetchall()
    assert rows == [(1,)]


def test_cleanup_removes_abandoned_buckets(settings: Settings, database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        conn.execute(
            "INSERT INTO rate_limits VALUES ('old', now() - interval '2 hours', 5), "
            "('new', now(), 1)"
        )

    async def work() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            return await ratelimit.cleanup(engine)
        finally:
            await engine.dispose()

    assert run(work()) == 1
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT bucket FROM rate_limits").fetchall() == [("new",)]


def test_bucket_names_hide_emails_and_stay_short() -> None:
    assert ratelimit.bucket("login:ip", "203.0.113.7") == "login:ip:203.0.113.7"
    hidden = ratelimit.bucket("login:email", "someone@example.com")
    assert "someone" not in hidden and hidden.startswith("login:email:")
    assert len(ratelimit.bucket("x", "y" * 10_000)) <= ratelimit.MAX_BUCKET_LENGTH


def test_login_limit_holds_across_two_worker_processes(
    live_server_factory, database: TestDatabase
) -> None:
    server = live_server_factory(workers=2, LICENTIA_TRUSTED_PROXIES="127.0.0.1")
    api = server.base_url + "/api/v1"

    def login(email: str, password: str, ip: str) -> httpx.Response:
        # A new connection per request, so the two workers share the traffic.
        return httpx.post(
            f"{api}/auth/login",
            json={"email": email, "password": password},
            headers={"X-Forwarded-For": ip},
            timeout=30,
        )

    created = httpx.post(
        f"{api}/auth/signup",
        json={
            "email": "victim@example.com",
            "password": PASSWORD,
            "full_name": "Victim",
            "organization_name": "Victims",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text

    fresh_minute(database, margin=20)
    # Per e-mail: ten failures from ten addresses, then even the right password is refused.
    for i in range(10):
        assert login("victim@example.com", "wrong password!!", f"10.0.1.{i}").status_code == 401
    blocked = login("victim@example.com", PASSWORD, "10.0.1.200")
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(blocked.headers["retry-after"]) <= 60

    # Per client address: ten failures for ten e-mails, then the address is refused ...
    for i in range(10):
        assert login(f"guess{i}@example.com", "wrong password!!", "10.0.2.1").status_code == 401
    assert login("other@example.com", "wrong password!!", "10.0.2.1").status_code == 429
    # ... while another address may still try.
    assert login("other@example.com", "wrong password!!", "10.0.2.2").status_code == 401

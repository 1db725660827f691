"""The PostgreSQL limiters (fixed windows; locked back-off and window state), and the login
limit across two worker processes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine
from support import TestDatabase, run

from server import ratelimit
from server.settings import Settings

PASSWORD = "correct horse battery"


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
            "INSERT INTO rate_limits VALUES ('old', now() - interval '3 days', 5), "
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


def test_address_keys_group_ipv6_by_64() -> None:
    assert ratelimit.address_key("203.0.113.7") == "203.0.113.7"
    assert ratelimit.address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert ratelimit.address_key("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert ratelimit.address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert ratelimit.address_key("testclient") == "testclient"


T0 = datetime(2030, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_backoff_doubles_the_wait_up_to_its_cap_and_forgets() -> None:
    policy = ratelimit.Backoff(free=2, base_seconds=10, max_seconds=35, forget_seconds=100)
    state = ratelimit.State("b")
    waits = []
    now = T0
    for _ in range(6):
        wait = policy.wait(state, now)
        waits.append(wait)
        now += timedelta(seconds=wait)
        state = policy.counted(state, now)
    assert waits == [0, 0, 10, 20, 35, 35]
    assert policy.wait(state, now + timedelta(seconds=5)) == 30
    assert policy.given_back(state, now).count == 5
    assert policy.wait(state, now + timedelta(seconds=100)) == 0  # forgotten
    assert policy.counted(state, now + timedelta(seconds=100)).count == 1


def test_window_opens_at_its_first_event() -> None:
    policy = ratelimit.Window(limit=2, seconds=60)
    state = ratelimit.State("w")
    state = policy.counted(state, _at(7))
    state = policy.counted(state, _at(30))
    assert (state.count, state.at) == (2, _at(7))
    assert policy.wait(state, _at(40)) == 27
    assert policy.wait(state, _at(67)) == 0
    assert policy.counted(state, _at(67)) == ratelimit.State("w", 1, _at(67))
    assert policy.given_back(state, _at(40)).count == 1


def test_locked_state_round_trips_and_serialises(settings: Settings) -> None:
    names = [ratelimit.bucket("test", uuid.uuid4().hex) for _ in range(2)]

    async def work() -> None:
        engine = create_async_engine(settings.database_url)
        try:
            async with engine.begin() as conn:
                states, now = await ratelimit.lock(conn, names)
                assert states == {n: ratelimit.State(n) for n in names}
                assert abs((now - datetime.now(UTC)).total_seconds()) < 60  # the database's
                await ratelimit.store(
                    conn, [ratelimit.State(names[0], 3, T0), ratelimit.State(names[1], 1, T0)]
                )
            async with engine.begin() as conn:
                # the same time: updated in place; a new time: replaced; a count of 0: gone
                await ratelimit.store(
                    conn, [ratelimit.State(names[0], 4, T0), ratelimit.State(names[1], 2, _at(9))]
                )
                states, now = await ratelimit.read(conn, names, now=_at(10))
                assert now == _at(10)
                assert states == {
                    names[0]: ratelimit.State(names[0], 4, T0),
                    names[1]: ratelimit.State(names[1], 2, _at(9)),
                }
                await ratelimit.store(conn, [ratelimit.State(names[0])])
            # a second transaction waits for the lock, then sees what the first stored
            order: list[str] = []

            async def first() -> None:
                async with engine.begin() as conn:
                    await ratelimit.lock(conn, reversed(names))
                    order.append("first locked")
                    await asyncio.sleep(0.2)  # hold the lock while the second one asks
                    await ratelimit.store(conn, [ratelimit.State(names[1], 7, _at(20))])
                    order.append("first stored")

            async def second() -> None:
                await asyncio.sleep(0.05)
                async with engine.begin() as conn:
                    states, _ = await ratelimit.lock(conn, names)
                    order.append(f"second saw {states[names[1]].count}")

            await asyncio.gather(first(), second())
            assert order == ["first locked", "first stored", "second saw 7"]
            async with engine.begin() as conn:
                states, _ = await ratelimit.read(conn, names)
                assert states[names[0]] == ratelimit.State(names[0])
        finally:
            await engine.dispose()

    run(work())


def test_login_limit_holds_across_two_worker_processes(
    live_server_factory, database: TestDatabase
) -> None:
    server = live_server_factory(
        workers=2,
        LICENTIA_TRUSTED_PROXIES="127.0.0.1/32",
        LICENTIA_LOGIN_FAILURES_PER_ADDRESS="8",
    )
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

    # Per e-mail and address: five failures, then even the right password waits ...
    for _ in range(5):
        assert login("victim@example.com", "wrong password!!", "10.0.1.1").status_code == 401
    blocked = login("victim@example.com", PASSWORD, "10.0.1.1")
    assert blocked.status_code == 429, blocked.text
    assert blocked.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(blocked.headers["retry-after"]) <= 30
    # ... but not from another address.
    assert login("victim@example.com", PASSWORD, "10.0.1.2").status_code == 200

    # Per client address: eight failures for eight e-mails, then the address waits ...
    for i in range(8):
        assert login(f"guess{i}@example.com", "wrong password!!", "10.0.2.1").status_code == 401
    assert login("other@example.com", "wrong password!!", "10.0.2.1").status_code == 429
    # ... while another address may still try.
    assert login("other@example.com", "wrong password!!", "10.0.2.2").status_code == 401

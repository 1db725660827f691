"""The login limit: per e-mail and address and per address with back-off, and per e-mail
from all addresses with a way through for clean addresses; counted before the password
check, so parallel guesses cannot slip past it; successful logins do not use it up. Time
passes by handing the service a clock (``now``), never by sleeping. Also the start-up dummy
hash and the explicit tenant filter of ``confirm_user``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import pytest
from factories import API, PASSWORD, signup
from litestar.testing import TestClient
from msgspec.structs import replace
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from support import TestDatabase, run

from server.auth import service as auth_service
from server.auth.principal import Principal, confirm_user
from server.db.session import set_tenant
from server.errors import RateLimited, Unauthenticated
from server.observability import client_ip_var
from server.settings import Settings

WRONG = "wrong password!!"
T = TypeVar("T")


# --- through the service, the clock in the test's hands --------------------------------------


@dataclass
class Logins:
    """Log in as a request would (its own transaction), from ``ip``, at ``now``."""

    engine: AsyncEngine
    side: AsyncEngine
    ctx: auth_service.TokenContext

    async def __call__(
        self, email: str, password: str, ip: str, now: datetime
    ) -> tuple[int, int | None]:
        token = client_ip_var.set(ip)
        try:
            async with AsyncSession(self.engine) as session, session.begin():
                await auth_service.login(
                    session, self.side, self.ctx, email=email, password=password, now=now
                )
            return 200, None
        except RateLimited as exc:
            return 429, exc.retry_after
        except Unauthenticated:
            return 401, None
        finally:
            client_ip_var.reset(token)


def with_logins(settings: Settings, work: Callable[[Logins], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = create_async_engine(settings.database_url, pool_size=5, max_overflow=20)
        side = create_async_engine(settings.database_url, pool_size=5, max_overflow=20)
        try:
            ctx = auth_service.TokenContext(settings=settings, secret=b"s" * 32)
            return await work(Logins(engine, side, ctx))
        finally:
            await engine.dispose()
            await side.dispose()

    return run(main())


T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_the_owner_logs_in_from_a_clean_address_while_an_attacker_hammers(
    client: TestClient, settings: Settings, cheap_argon2: None
) -> None:
    signup(client, email="owner@example.com")

    async def work(login: Logins) -> None:
        attacker = [await login("owner@example.com", WRONG, "198.51.100.66", T0) for _ in range(30)]
        assert [s for s, _ in attacker] == [401] * 5 + [429] * 25
        # the attacker's own address is refused even the right password while it waits ...
        assert (await login("owner@example.com", PASSWORD, "198.51.100.66", T0))[0] == 429
        # ... the owner, elsewhere, is not: not after a typo either
        assert await login("owner@example.com", WRONG, "203.0.113.5", T0) == (401, None)
        assert await login("owner@example.com", PASSWORD, "203.0.113.5", T0) == (200, None)
        # the attacker's IPv6 /64 is one address: moving inside it earns nothing
        six = [
            await login("owner@example.com", WRONG, f"2001:db8:0:1::{i:x}", T0) for i in range(7)
        ]
        assert [s for s, _ in six] == [401] * 5 + [429] * 2

    with_logins(settings, work)


def test_retry_after_grows_with_each_further_failure(
    client: TestClient, settings: Settings, cheap_argon2: None
) -> None:
    signup(client, email="target@example.com")

    async def work(login: Logins) -> None:
        ip, now = "198.51.100.66", T0
        assert [(await login("target@example.com", WRONG, ip, now))[0] for _ in range(5)] == [
            401
        ] * 5
        waits = []
        for _ in range(8):
            status, wait = await login("target@example.com", WRONG, ip, now)
            assert status == 429 and wait is not None
            waits.append(wait)
            # a refusal costs nothing and changes nothing: part of the wait later, the rest
            later = now + timedelta(seconds=wait // 3)
            assert await login("target@example.com", WRONG, ip, later) == (429, wait - wait // 3)
            now += timedelta(seconds=wait)
            assert (await login("target@example.com", WRONG, ip, now))[0] == 401
        assert waits == [30, 60, 120, 240, 480, 900, 900, 900]
        # the right password when the wait is over clears this address's failures
        now += timedelta(seconds=900)
        assert (await login("target@example.com", PASSWORD, ip, now))[0] == 200
        assert [(await login("target@example.com", WRONG, ip, now))[0] for _ in range(6)] == [
            401
        ] * 5 + [429]
        # and a quiet day forgets them too
        now += timedelta(days=1)
        assert (await login("target@example.com", WRONG, ip, now))[0] == 401

    with_logins(settings, work)


def test_a_distributed_attacker_is_bounded_by_the_per_email_limit(
    client: TestClient, settings: Settings, cheap_argon2: None
) -> None:
    assert settings.login_failures_per_email_per_hour == 100
    signup(client, email="victim@example.com")

    async def work(login: Logins) -> None:
        checked = 0
        # twenty addresses, five guesses each: all checked, and the e-mail's hour is full
        for i in range(20):
            for _ in range(5):
                assert (await login("victim@example.com", WRONG, f"198.51.100.{i}", T0))[0] == 401
                checked += 1
        assert checked == 100
        # an address that has failed for this e-mail is refused until the hour is over
        for i in range(20):
            now = T0 + timedelta(minutes=10)
            status, wait = await login("victim@example.com", WRONG, f"198.51.100.{i}", now)
            assert (status, wait) == (429, 3000)
        # each fresh address gets one check, no more, however many ask at once
        fresh = await asyncio.gather(
            *(login("victim@example.com", WRONG, "203.0.113.77", T0) for _ in range(20))
        )
        assert sorted(s for s, _ in fresh) == [401] + [429] * 19
        for i in range(10):
            first = await login("victim@example.com", WRONG, f"192.0.2.{i}", T0)
            second = await login("victim@example.com", WRONG, f"192.0.2.{i}", T0)
            assert (first[0], second[0]) == (401, 429)
        # a new hour gives the known addresses their next guesses again (at back-off pace)
        later = T0 + timedelta(hours=1, seconds=1)
        assert (await login("victim@example.com", WRONG, "198.51.100.0", later))[0] == 401

    with_logins(settings, work)


def test_the_right_password_from_a_clean_address_passes_the_per_email_limit(
    client: TestClient, settings: Settings, cheap_argon2: None
) -> None:
    strict = replace(settings, login_failures_per_email_per_hour=10)
    signup(client, email="owner@example.com")

    async def work(login: Logins) -> None:
        # the owner mistyped once from home, then the attackers came
        assert (await login("owner@example.com", WRONG, "203.0.113.5", T0))[0] == 401
        for i in range(9):
            assert (await login("owner@example.com", WRONG, f"198.51.100.{i}", T0))[0] == 401
        assert (await login("owner@example.com", WRONG, "198.51.100.0", T0))[0] == 429
        # from the office, where nothing failed, the right password works, and again
        for _ in range(3):
            assert (await login("owner@example.com", PASSWORD, "192.0.2.10", T0))[0] == 200
        # from home, where a failure is on record, it waits for the hour to end
        assert await login("owner@example.com", PASSWORD, "203.0.113.5", T0) == (429, 3600)
        end = T0 + timedelta(hours=1)
        assert (await login("owner@example.com", PASSWORD, "203.0.113.5", end))[0] == 200

    with_logins(strict, work)


def test_the_per_address_limit_spans_e_mails(settings: Settings, cheap_argon2: None) -> None:
    assert settings.login_failures_per_address == 20

    async def work(login: Logins) -> None:
        statuses = [
            (await login(f"guess{i}@example.com", WRONG, "198.51.100.9", T0))[0] for i in range(21)
        ]
        assert statuses == [401] * 20 + [429]
        assert await login("other@example.com", WRONG, "198.51.100.9", T0) == (429, 30)
        assert (await login("other@example.com", WRONG, "198.51.100.10", T0))[0] == 401
        # an hour without a failure forgets the address
        later = T0 + timedelta(hours=1)
        assert (await login("other@example.com", WRONG, "198.51.100.9", later))[0] == 401

    with_logins(settings, work)


# --- through real worker processes --------------------------------------------------------


def test_parallel_wrong_passwords_reach_the_password_check_at_most_five_times(
    live_server_factory, database: TestDatabase
) -> None:
    server = live_server_factory(workers=2, LICENTIA_TRUSTED_PROXIES="127.0.0.1/32")
    api = server.base_url + API
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        signup(http, email="v@x.io")

    def attempt(_: int) -> int:
        return httpx.post(
            f"{api}/auth/login",
            json={"email": "v@x.io", "password": WRONG},
            headers={"X-Forwarded-For": "198.51.100.66"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(attempt, range(60)))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) >= 55
    # The attacker's address waits, even with the right password; the owner's does not.
    for ip, status in (("198.51.100.66", 429), ("203.0.113.5", 200)):
        right = httpx.post(
            f"{api}/auth/login",
            json={"email": "v@x.io", "password": PASSWORD},
            headers={"X-Forwarded-For": ip},
            timeout=30,
        )
        assert right.status_code == status, right.text


def test_successful_logins_do_not_use_up_the_limit(
    client: TestClient, database: TestDatabase, cheap_argon2: None
) -> None:
    signup(client, email="busy@example.com")
    for _ in range(15):
        response = client.post(
            f"{API}/auth/login", json={"email": "busy@example.com", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
    # Failures still count: five are answered, then the back-off holds.
    wrong = {"email": "busy@example.com", "password": WRONG}
    assert [client.post(f"{API}/auth/login", json=wrong).status_code for _ in range(5)] == [401] * 5
    refused = client.post(f"{API}/auth/login", json=wrong)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 30


def test_dummy_hash_is_built_at_start_up(settings: Settings, signing_key: str) -> None:
    from server.app import create_app

    auth_service._dummy_hash.cache_clear()
    with TestClient(create_app(settings)):
        assert auth_service._dummy_hash.cache_info().currsize == 1


def test_confirm_user_filters_on_the_tokens_organization(
    client: TestClient, settings: Settings, cheap_argon2: None
) -> None:
    """RLS is the backstop; the query itself must also name the organization. A platform
    admin transaction (RLS open to every tenant) shows the explicit filter at work."""
    body = signup(client, email="owner@example.com")
    user_id = uuid.UUID(body["user"]["id"])
    other_org = uuid.uuid4()
    forged = Principal(kind="user", id=user_id, organization_id=other_org, role="owner")
    genuine = Principal(
        kind="user",
        id=user_id,
        organization_id=uuid.UUID(body["organization"]["id"]),
        role="owner",
    )

    async def work() -> None:
        engine = create_async_engine(settings.database_url)
        try:
            async with AsyncSession(engine) as session, session.begin():
                await set_tenant(session, other_org, platform_admin=True)
                await confirm_user(session, genuine)
                with pytest.raises(Unauthenticated):
                    await confirm_user(session, forged)
        finally:
            await engine.dispose()

    run(work())

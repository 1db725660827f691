"""The login limit counts attempts before the password check, so parallel guesses cannot
slip past it; successful logins do not use it up. Also the start-up dummy hash and the
explicit tenant filter of ``confirm_user``."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from conftest import TestDatabase, run
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from server.auth import service as auth_service
from server.auth.principal import Principal, confirm_user
from server.db.session import set_tenant
from server.errors import Unauthenticated
from server.settings import Settings

PASSWORD = "correct horse battery"
API = "/api/v1"


def fresh_minute(database: TestDatabase, margin: float = 20.0) -> None:
    """Windows are aligned on the database clock: count to a limit early in a window."""
    with psycopg.connect(database.owner_url) as conn:
        second = float(conn.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
    into = second % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.2)


def _signup(post, email: str) -> dict:
    response = post(
        f"{API}/auth/signup",
        json={
            "email": email,
            "password": PASSWORD,
            "full_name": "Ada",
            "organization_name": "Acme",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_parallel_wrong_passwords_reach_the_password_check_at_most_ten_times(
    live_server_factory, database: TestDatabase
) -> None:
    server = live_server_factory(workers=2)
    api = server.base_url + API
    _signup(lambda url, json: httpx.post(server.base_url + url, json=json, timeout=30), "v@x.io")
    fresh_minute(database)

    def attempt(_: int) -> int:
        return httpx.post(
            f"{api}/auth/login",
            json={"email": "v@x.io", "password": "wrong password!!"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(attempt, range(60)))
    assert set(statuses) <= {401, 429}, statuses
    assert statuses.count(401) <= 10, statuses
    assert statuses.count(429) >= 50
    # Even the right password is refused now: the e-mail's window is used up.
    right = httpx.post(f"{api}/auth/login", json={"email": "v@x.io", "password": PASSWORD})
    assert right.status_code == 429


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    from argon2 import PasswordHasher

    monkeypatch.setattr(
        auth_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def test_successful_logins_do_not_use_up_the_limit(
    client: TestClient, database: TestDatabase, cheap_argon2: None
) -> None:
    _signup(client.post, "busy@example.com")
    fresh_minute(database)
    for _ in range(15):
        response = client.post(
            f"{API}/auth/login", json={"email": "busy@example.com", "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
    # Failures still count: nine more are answered, then the limit holds.
    wrong = {"email": "busy@example.com", "password": "wrong password!!"}
    assert [client.post(f"{API}/auth/login", json=wrong).status_code for _ in range(10)] == [
        401
    ] * 10
    assert client.post(f"{API}/auth/login", json=wrong).status_code == 429


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
    body = _signup(client.post, "owner@example.com")
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

"""Logging out everywhere and changing a password end every session of the account at once:
its refresh tokens are revoked and its access tokens, which would otherwise live up to an
hour, stop working on their next request (401 TOKEN_REVOKED)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

import psycopg
import pytest
from factories import API, PASSWORD, add_user, login, signup
from litestar.testing import TestClient
from support import TestDatabase, assert_problem, bearer, make_api_key

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def _login(client: TestClient, email: str, password: str = PASSWORD) -> dict:
    response = login(client, email, password)
    assert response.status_code == 200, response.text
    return response.json()


def _refresh(client: TestClient, token: str):
    return client.post(f"{API}/auth/refresh", json={"refresh_token": token})


def test_logout_everywhere_ends_every_access_and_refresh_token(
    client: TestClient, database: TestDatabase
) -> None:
    body = signup(client)
    email = body["user"]["email"]
    laptop, phone = _login(client, email), _login(client, email)
    for pair in (body, laptop, phone):
        assert client.get(f"{API}/auth/me", headers=bearer(pair["access_token"])).status_code == 200

    ended = client.post(f"{API}/auth/logout-all", headers=bearer(phone["access_token"]))
    assert ended.status_code == 204, ended.text

    for pair in (body, laptop, phone):
        old = bearer(pair["access_token"])
        assert_problem(client.get(f"{API}/auth/me", headers=old), 401, "TOKEN_REVOKED")
        assert_problem(client.get(f"{API}/projects", headers=old), 401, "TOKEN_REVOKED")
        assert_problem(_refresh(client, pair["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
    # A new login works, and its tokens do.
    fresh = _login(client, email)
    assert client.get(f"{API}/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert _refresh(client, fresh["refresh_token"]).status_code == 200
    with psycopg.connect(database.owner_url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_events ORDER BY id")]
    assert "auth.logout_all" in actions


def test_logout_everywhere_needs_a_user(client: TestClient, settings: Settings) -> None:
    assert_problem(client.post(f"{API}/auth/logout-all"), 401)
    key = bearer(make_api_key(settings, ["*"]))
    assert_problem(client.post(f"{API}/auth/logout-all", headers=key), 403)


def test_logout_everywhere_touches_no_one_else(client: TestClient) -> None:
    org = signup(client)
    colleague = add_user(client, org["headers"])
    assert client.post(f"{API}/auth/logout-all", headers=org["headers"]).status_code == 204
    assert client.get(f"{API}/auth/me", headers=colleague["headers"]).status_code == 200


def test_a_password_change_ends_every_session(client: TestClient) -> None:
    org = signup(client)
    member = add_user(client, org["headers"])
    other_session = _login(client, member["email"])
    url, new = f"{API}/users/{member['id']}", "a brand new passphrase"
    changed = client.patch(
        url, headers=member["headers"], json={"password": new, "current_password": PASSWORD}
    )
    assert changed.status_code == 200, changed.text

    for headers in (member["headers"], bearer(other_session["access_token"])):
        assert_problem(client.get(f"{API}/auth/me", headers=headers), 401, "TOKEN_REVOKED")
    assert_problem(_refresh(client, other_session["refresh_token"]), 401, "INVALID_REFRESH_TOKEN")
    fresh = _login(client, member["email"], new)
    assert client.get(f"{API}/auth/me", headers=bearer(fresh["access_token"])).status_code == 200
    # The owner's session is untouched.
    assert client.get(f"{API}/auth/me", headers=org["headers"]).status_code == 200


def test_a_renamed_user_keeps_their_session(client: TestClient) -> None:
    org = signup(client)
    renamed = client.patch(
        f"{API}/users/{org['user']['id']}", headers=org["headers"], json={"full_name": "New"}
    )
    assert renamed.status_code == 200
    assert client.get(f"{API}/auth/me", headers=org["headers"]).status_code == 200


def test_a_refresh_waits_for_a_concurrent_end_of_every_session(
    client: TestClient, database: TestDatabase
) -> None:
    """Ending every session locks the user's row first, and a refresh takes the same lock
    before it claims its token: it cannot slip a new token in beside the revocation."""
    body = signup(client)
    with psycopg.connect(database.owner_url) as conn, ThreadPoolExecutor(1) as pool:
        conn.execute("SELECT set_config('app.platform_admin', 'on', true)")
        # The lock end_every_session's UPDATE of the generation takes.
        user = (body["user"]["id"],)
        conn.execute("SELECT 1 FROM users WHERE id = %s FOR NO KEY UPDATE", user)
        pending = pool.submit(_refresh, client, body["refresh_token"])
        done, _ = wait([pending], timeout=1.0)
        assert not done, "the refresh did not wait for the user's row"
        conn.execute("UPDATE users SET token_generation = token_generation + 1 WHERE id = %s", user)
        conn.execute("UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL")
        conn.commit()
        assert_problem(pending.result(timeout=30), 401, "INVALID_REFRESH_TOKEN")
    with psycopg.connect(database.owner_url) as conn:
        alive = conn.execute("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        assert alive.fetchone() == (0,)

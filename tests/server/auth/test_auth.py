"""Sign-up, login, me, refresh rotation with reuse detection, logout, login brute force."""

from __future__ import annotations

import psycopg
import pytest
from argon2 import PasswordHasher
from factories import API, PASSWORD, login, signup
from litestar.testing import TestClient
from support import TestDatabase, bearer, make_api_key

from server.auth import service as auth_service
from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")  # argon2id, at test-sized cost


# --- sign-up --------------------------------------------------------------------------------


def test_signup_creates_organization_and_owner(client: TestClient) -> None:
    body = signup(
        client, email="  Ada@Example.COM ", org="  Analytical Engines  ", full_name="Ada Lovelace"
    )
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"] and body["refresh_token"]
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["role"] == "owner"
    assert body["organization"]["name"] == "Analytical Engines"
    assert body["user"]["organization_id"] == body["organization"]["id"]
    assert "password" not in str(body["user"]).lower()

    me = client.get(f"{API}/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {
        "id": body["user"]["id"],
        "email": "ada@example.com",
        "full_name": "Ada Lovelace",
        "role": "owner",
        "organization_id": body["organization"]["id"],
        "organization": body["organization"],
    }


def test_signup_stores_an_argon2id_hash_and_audits(
    client: TestClient, database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth_service, "_hasher", PasswordHasher())  # production parameters
    body = signup(client)
    with psycopg.connect(database.owner_url) as conn:
        stored = conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (body["user"]["id"],)
        ).fetchone()[0]
        actions = {
            row[0]
            for row in conn.execute(
                "SELECT action FROM audit_events WHERE organization_id = %s",
                (body["organization"]["id"],),
            )
        }
        refresh = conn.execute("SELECT token_hash FROM refresh_tokens").fetchall()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    assert {"organization.create", "user.signup"} <= actions
    assert [bytes(r[0]) for r in refresh] == [
        auth_service.hash_secret(body["refresh_token"])
    ]  # stored hashed only


def test_signup_never_tells_whether_an_address_has_an_account(client: TestClient) -> None:
    """Addresses are unique per organization, and a sign-up makes a new one: an address
    known elsewhere signs up like a new one (normalised the same way)."""
    first = signup(client, email="grace@example.com")
    second = signup(client, email=" GRACE@example.com", org="Other")
    assert second["user"]["email"] == "grace@example.com"
    assert second["organization"]["id"] != first["organization"]["id"]
    assert set(second) == set(first)


VALID_SIGNUP = {
    "email": "new@example.com",
    "password": PASSWORD,
    "full_name": "New Person",
    "organization_name": "New Org",
}


@pytest.mark.parametrize(
    "change",
    [
        {"email": "not-an-email"},
        {"email": "two@@example.com"},
        {"email": "spaces in@example.com"},
        {"email": "x" * 10_000 + "@example.com"},
        {"email": 42},
        {"password": "short"},
        {"password": " " * 12},
        {"password": "p" * 10_000},
        {"password": None},
        {"full_name": ""},
        {"full_name": "   "},
        {"full_name": "n" * 10_000},
        {"organization_name": "o" * 10_000},
        {"organization_name": ["list"]},
        {"role": "owner"},  # unknown field
    ],
)
def test_signup_rejects_bad_input(client: TestClient, change: dict) -> None:
    response = client.post(f"{API}/auth/signup", json={**VALID_SIGNUP, **change})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"]


@pytest.mark.parametrize("missing", list(VALID_SIGNUP))
def test_signup_requires_every_field(client: TestClient, missing: str) -> None:
    body = {k: v for k, v in VALID_SIGNUP.items() if k != missing}
    response = client.post(f"{API}/auth/signup", json=body)
    assert response.status_code == 422
    assert missing in response.json()["detail"]


def test_malformed_json_is_400(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


# --- login ----------------------------------------------------------------------------------


def test_login_returns_a_working_pair(client: TestClient) -> None:
    body = signup(client, email="lin@example.com")
    response = login(client, " LIN@example.com ")
    assert response.status_code == 200, response.text
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    me = client.get(f"{API}/auth/me", headers=bearer(pair["access_token"]))
    assert me.json()["id"] == body["user"]["id"]


def test_unknown_email_and_wrong_password_look_the_same(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    signup(client, email="known@example.com")
    verified: list[str] = []
    real_verify = auth_service.verify_password

    async def spy(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return await real_verify(password_hash, password)

    monkeypatch.setattr(auth_service, "verify_password", spy)
    wrong = login(client, "known@example.com", "wrong password!!")
    unknown = login(client, "nobody@example.com", "wrong password!!")
    invalid = login(client, "not an email", "wrong password!!")
    assert wrong.status_code == unknown.status_code == invalid.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(wrong) == strip(unknown) == strip(invalid)
    assert wrong.json()["code"] == "INVALID_CREDENTIALS"
    # The argon2 work is done whether or not the e-mail exists.
    assert len(verified) == 3
    assert all(h.startswith("$argon2id$") for h in verified)


def test_login_bad_input(client: TestClient) -> None:
    for body in (
        {},
        {"email": "a@example.com"},
        {"email": 1, "password": "x"},
        {"email": "a@example.com", "password": "p" * 10_000},
        {"email": "a" * 10_000, "password": "x"},
        {"email": "a@example.com", "password": "x", "extra": True},
    ):
        response = client.post(f"{API}/auth/login", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)


def test_repeated_failures_for_one_email_from_one_address_are_429(
    client: TestClient, database: TestDatabase
) -> None:
    signup(client, email="target@example.com")
    for _ in range(5):
        assert login(client, "target@example.com", "wrong password!!").status_code == 401
    blocked = login(client, "target@example.com")  # even the right password, from here
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "RATE_LIMITED"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 30
    # The counters live in PostgreSQL, written although each failed request rolled back;
    # the refused attempt counted nothing.
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute("SELECT bucket, hits FROM rate_limits WHERE bucket LIKE 'login:%'")
        hits = dict(rows.fetchall())
    assert sorted(b.split(":")[1] for b in hits) == ["account", "addr", "pair"]
    assert set(hits.values()) == {5}
    assert "target@example.com" not in " ".join(hits)  # no e-mail stored in clear


def test_repeated_failures_from_one_client_address_are_429(client: TestClient) -> None:
    for i in range(20):
        assert login(client, f"guess{i}@example.com", "wrong password!!").status_code == 401
    assert login(client, "another@example.com", "whatever password").status_code == 429


# --- me -------------------------------------------------------------------------------------


def test_me_needs_a_user(client: TestClient, settings) -> None:
    assert client.get(f"{API}/auth/me").status_code == 401
    assert client.get(f"{API}/auth/me", headers=bearer("garbage")).status_code == 401
    key = make_api_key(settings, ["*"])
    response = client.get(f"{API}/auth/me", headers=bearer(key))
    assert response.status_code == 403


# --- refresh & logout -----------------------------------------------------------------------


def refresh(client: TestClient, token: str):
    return client.post(f"{API}/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_and_the_old_token_stops_working(client: TestClient) -> None:
    first = signup(client)["refresh_token"]
    response = refresh(client, first)
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first
    me = client.get(f"{API}/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 200
    third = refresh(client, second["refresh_token"])
    assert third.status_code == 200


def test_reusing_a_refresh_token_revokes_the_whole_family(
    client: TestClient, database: TestDatabase
) -> None:
    body = signup(client)
    stolen = body["refresh_token"]
    legit = refresh(client, stolen).json()["refresh_token"]  # the user rotates

    reuse = refresh(client, stolen)  # the thief replays the old one
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "REFRESH_TOKEN_REUSED"
    # ... and the legitimate, never-used token of that family is dead too.
    after = refresh(client, legit)
    assert after.status_code == 401
    assert after.json()["code"] == "INVALID_REFRESH_TOKEN"
    with psycopg.connect(database.owner_url) as conn:
        alive = conn.execute(
            "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"
        ).fetchone()[0]
        audit = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'auth.refresh_token_reuse'"
        ).fetchone()[0]
    assert alive == 0
    assert audit == 1


def test_other_sessions_survive_a_family_revocation(client: TestClient) -> None:
    signup(client, email="two@example.com")
    other = login(client, "two@example.com").json()["refresh_token"]
    first = login(client, "two@example.com").json()["refresh_token"]
    refresh(client, first)
    assert refresh(client, first).status_code == 401
    assert refresh(client, other).status_code == 200


def test_expired_refresh_token_is_refused(client: TestClient, database: TestDatabase) -> None:
    token = signup(client)["refresh_token"]
    with psycopg.connect(database.owner_url) as conn:
        conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    response = refresh(client, token)
    assert response.status_code == 401
    assert response.json()["code"] == "REFRESH_TOKEN_EXPIRED"


def test_logout_revokes_the_refresh_token(client: TestClient) -> None:
    token = signup(client)["refresh_token"]
    response = client.post(f"{API}/auth/logout", json={"refresh_token": token})
    assert response.status_code == 204
    assert refresh(client, token).status_code == 401
    # Unknown or already revoked: still 204 (nothing to reveal).
    again = client.post(f"{API}/auth/logout", json={"refresh_token": token})
    assert again.status_code == 204
    unknown = client.post(f"{API}/auth/logout", json={"refresh_token": "nope"})
    assert unknown.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"refresh_token": ""},
        {"refresh_token": 5},
        {"refresh_token": "x" * 10_000},
        {"refresh_token": "x", "more": 1},
    ],
)
def test_refresh_and_logout_bad_input(client: TestClient, body: dict) -> None:
    for path in ("refresh", "logout"):
        response = client.post(f"{API}/auth/{path}", json=body)
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["code"]


def test_unknown_refresh_token_is_401(client: TestClient) -> None:
    response = refresh(client, "definitely-not-issued")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_REFRESH_TOKEN"


def test_signups_are_limited_per_address(settings: Settings, signing_key: str) -> None:
    import msgspec

    from server.app import create_app

    limited = msgspec.structs.replace(settings, signups_per_hour=2)
    with TestClient(create_app(limited)) as client:
        for _ in range(2):
            signup(client)
        refused = client.post(
            f"{API}/auth/signup",
            json={
                "email": "third@example.com",
                "password": PASSWORD,
                "full_name": "Third",
                "organization_name": "Third",
            },
        )
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["retry-after"]) > 0

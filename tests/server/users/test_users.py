"""Users: tenancy, roles, the last-owner rule, admin API keys, bad input."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import API, PASSWORD, add_user, signup
from litestar.testing import TestClient
from support import TestDatabase, assert_problem, bearer, make_api_key

from server.auth.principal import ROLE_SCOPES
from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


# --- tenancy --------------------------------------------------------------------------------


def test_users_of_another_organization_are_invisible(client: TestClient) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    member_a = add_user(client, a["headers"])
    b_user = b["user"]["id"]

    listed = client.get(f"{API}/users", headers=member_a["headers"])
    assert listed.status_code == 200
    ids = {u["id"] for u in listed.json()["items"]}
    assert ids == {a["user"]["id"], member_a["id"]}
    assert all(u["organization_id"] == a["organization"]["id"] for u in listed.json()["items"])

    for headers in (a["headers"], member_a["headers"]):
        assert_problem(client.get(f"{API}/users/{b_user}", headers=headers), 404, "USER_NOT_FOUND")
    assert_problem(
        client.patch(f"{API}/users/{b_user}", headers=a["headers"], json={"full_name": "X"}),
        404,
    )
    assert_problem(
        client.patch(f"{API}/users/{b_user}", headers=a["headers"], json={"role": "member"}),
        404,
    )
    assert_problem(client.delete(f"{API}/users/{b_user}", headers=a["headers"]), 404)
    # A user cannot add someone to another organization either.
    other_org = client.post(
        f"{API}/users",
        headers=a["headers"],
        json={
            "email": "sneaky@example.com",
            "full_name": "S",
            "password": PASSWORD,
            "organization_id": b["organization"]["id"],
        },
    )
    assert_problem(other_org, 404, "ORGANIZATION_NOT_FOUND")
    # B is untouched.
    assert client.get(f"{API}/users/{b_user}", headers=b["headers"]).json()["full_name"] == "Owner"


def test_unauthenticated_is_401(client: TestClient) -> None:
    assert_problem(client.get(f"{API}/users"), 401)
    assert_problem(client.post(f"{API}/users", json={}), 401)


# --- roles ----------------------------------------------------------------------------------


def test_member_reads_but_does_not_manage(client: TestClient) -> None:
    a = signup(client)
    member = add_user(client, a["headers"])
    other = add_user(client, a["headers"])
    h = member["headers"]
    assert client.get(f"{API}/users/{other['id']}", headers=h).status_code == 200
    new = {"email": "m@example.com", "full_name": "M", "password": PASSWORD}
    assert_problem(client.post(f"{API}/users", headers=h, json=new), 403)
    assert_problem(client.delete(f"{API}/users/{other['id']}", headers=h), 403)
    assert_problem(
        client.patch(f"{API}/users/{other['id']}", headers=h, json={"full_name": "X"}), 403
    )
    assert_problem(
        client.patch(f"{API}/users/{member['id']}", headers=h, json={"role": "admin"}), 403
    )
    # ... but may rename themselves.
    own = client.patch(f"{API}/users/{member['id']}", headers=h, json={"full_name": " Me "})
    assert own.status_code == 200 and own.json()["full_name"] == "Me"


def test_admin_manages_members_but_not_owners(client: TestClient) -> None:
    a = signup(client)
    admin = add_user(client, a["headers"], "admin")
    h = admin["headers"]
    member = add_user(client, h)  # an admin adds a member
    owner_id = a["user"]["id"]
    body = {"email": "o2@example.com", "full_name": "O", "password": PASSWORD, "role": "owner"}
    assert_problem(client.post(f"{API}/users", headers=h, json=body), 403)
    assert_problem(client.patch(f"{API}/users/{owner_id}", headers=h, json={"role": "member"}), 403)
    assert_problem(client.delete(f"{API}/users/{owner_id}", headers=h), 403)
    assert_problem(
        client.patch(f"{API}/users/{member['id']}", headers=h, json={"role": "owner"}), 403
    )
    promoted = client.patch(f"{API}/users/{member['id']}", headers=h, json={"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert client.delete(f"{API}/users/{member['id']}", headers=h).status_code == 204
    assert_problem(client.get(f"{API}/users/{member['id']}", headers=h), 404)


def test_an_organization_keeps_at_least_one_owner(client: TestClient) -> None:
    a = signup(client)
    owner_id, h = a["user"]["id"], a["headers"]
    assert_problem(
        client.patch(f"{API}/users/{owner_id}", headers=h, json={"role": "admin"}),
        409,
        "LAST_OWNER",
    )
    assert_problem(client.delete(f"{API}/users/{owner_id}", headers=h), 409, "LAST_OWNER")

    second = add_user(client, h, "owner")
    demoted = client.patch(f"{API}/users/{owner_id}", headers=h, json={"role": "member"})
    assert demoted.status_code == 200, demoted.text
    # The new sole owner is protected in turn.
    assert_problem(
        client.delete(f"{API}/users/{second['id']}", headers=second["headers"]), 409, "LAST_OWNER"
    )


def test_roles_come_from_the_database_not_the_token(client: TestClient) -> None:
    a = signup(client)
    admin = add_user(client, a["headers"], "admin")
    demote = client.patch(
        f"{API}/users/{admin['id']}", headers=a["headers"], json={"role": "member"}
    )
    assert demote.status_code == 200
    # The old access token still says "admin": it stops working at once, reads included.
    body = {"email": "late@example.com", "full_name": "L", "password": PASSWORD}
    stale = client.post(f"{API}/users", headers=admin["headers"], json=body)
    assert_problem(stale, 401, "TOKEN_STALE")
    assert_problem(client.get(f"{API}/projects", headers=admin["headers"]), 401, "TOKEN_STALE")


def test_a_deleted_users_token_stops_working_at_once(client: TestClient) -> None:
    a = signup(client)
    member = add_user(client, a["headers"])
    assert client.get(f"{API}/projects", headers=member["headers"]).status_code == 200
    removed = client.delete(f"{API}/users/{member['id']}", headers=a["headers"])
    assert removed.status_code == 204, removed.text
    assert_problem(client.get(f"{API}/projects", headers=member["headers"]), 401, "INVALID_TOKEN")


def test_change_own_password(client: TestClient) -> None:
    a = signup(client)
    member = add_user(client, a["headers"])
    url, h = f"{API}/users/{member['id']}", member["headers"]
    new = "a brand new passphrase"
    assert_problem(client.patch(url, headers=h, json={"password": new}), 403, "WRONG_PASSWORD")
    assert_problem(
        client.patch(url, headers=h, json={"password": new, "current_password": "nope"}),
        403,
        "WRONG_PASSWORD",
    )
    # Nobody else sets it, not even the owner.
    assert_problem(
        client.patch(url, headers=a["headers"], json={"password": new, "current_password": "x"}),
        403,
        "SELF_ONLY",
    )
    ok = client.patch(url, headers=h, json={"password": new, "current_password": PASSWORD})
    assert ok.status_code == 200, ok.text
    email = member["email"]
    assert (
        client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD}).status_code
        == 401
    )
    assert (
        client.post(f"{API}/auth/login", json={"email": email, "password": new}).status_code == 200
    )


def test_duplicate_email_is_409(client: TestClient) -> None:
    a = signup(client)
    body = {"email": a["user"]["email"].upper(), "full_name": "D", "password": PASSWORD}
    assert_problem(client.post(f"{API}/users", headers=a["headers"], json=body), 409, "EMAIL_TAKEN")


# --- admin API keys -------------------------------------------------------------------------


def test_admin_keys_and_scopes(client: TestClient, settings: Settings) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    reader = bearer(make_api_key(settings, ["organizations:read"]))
    writer = bearer(make_api_key(settings, sorted(ROLE_SCOPES["owner"])))
    unrelated = bearer(make_api_key(settings, ["licenses:read"]))

    everyone = client.get(f"{API}/users", headers=reader).json()["items"]
    assert {u["id"] for u in everyone} >= {a["user"]["id"], b["user"]["id"]}
    only_b = client.get(
        f"{API}/users", headers=reader, params={"organization_id": b["organization"]["id"]}
    ).json()["items"]
    assert [u["id"] for u in only_b] == [b["user"]["id"]]

    body = {"email": "staff@example.com", "full_name": "S", "password": PASSWORD, "role": "owner"}
    assert_problem(client.get(f"{API}/users", headers=unrelated), 403, "MISSING_SCOPE")
    assert_problem(client.post(f"{API}/users", headers=reader, json=body), 403, "MISSING_SCOPE")
    assert_problem(
        client.post(f"{API}/users", headers=writer, json=body), 422, "ORGANIZATION_REQUIRED"
    )
    missing_org = {**body, "organization_id": str(uuid.uuid4())}
    assert_problem(client.post(f"{API}/users", headers=writer, json=missing_org), 404)
    created = client.post(
        f"{API}/users", headers=writer, json={**body, "organization_id": b["organization"]["id"]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["organization_id"] == b["organization"]["id"]
    assert created.json()["role"] == "owner"


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"email": "x@example.com", "full_name": "X"},
        {"email": "not-an-email", "full_name": "X", "password": PASSWORD},
        {"email": "x" * 10_000, "full_name": "X", "password": PASSWORD},
        {"email": "x@example.com", "full_name": "X" * 10_000, "password": PASSWORD},
        {"email": "x@example.com", "full_name": "X", "password": "short"},
        {"email": "x@example.com", "full_name": "X", "password": PASSWORD, "role": "root"},
        {"email": "x@example.com", "full_name": "X", "password": PASSWORD, "role": 1},
        {"email": "x@example.com", "full_name": "X", "password": PASSWORD, "organization_id": -1},
        {"email": "x@example.com", "full_name": " ", "password": PASSWORD},
        {"email": "x@example.com", "full_name": "X", "password": PASSWORD, "admin": True},
        [],
    ],
)
def test_create_bad_input(client: TestClient, body: object) -> None:
    a = signup(client)
    response = client.post(f"{API}/users", headers=a["headers"], json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"]


@pytest.mark.parametrize(
    "body",
    [
        {"role": "superuser"},
        {"role": None, "full_name": 7},
        {"full_name": "n" * 10_000},
        {"full_name": ""},
        {"password": "p" * 10_000, "current_password": PASSWORD},
        {"password": "short", "current_password": PASSWORD},
        {"unknown": 1},
        "text",
    ],
)
def test_update_bad_input(client: TestClient, body: object) -> None:
    a = signup(client)
    response = client.patch(f"{API}/users/{a['user']['id']}", headers=a["headers"], json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"]


def test_bad_ids_and_paging(client: TestClient) -> None:
    a = signup(client)
    for _ in range(2):
        add_user(client, a["headers"])
    assert client.get(f"{API}/users/not-a-uuid", headers=a["headers"]).status_code in (400, 404)
    page = client.get(f"{API}/users", headers=a["headers"], params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"{API}/users", headers=a["headers"], params={"limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    for params in ({"limit": 0}, {"limit": 101}, {"limit": -1}, {"cursor": "%%%"}):
        response = client.get(f"{API}/users", headers=a["headers"], params=params)
        assert 400 <= response.status_code < 500, (params, response.text)


def test_member_changes_are_audited(client: TestClient, database: TestDatabase) -> None:
    a = signup(client)
    member = add_user(client, a["headers"])
    client.patch(f"{API}/users/{member['id']}", headers=a["headers"], json={"role": "admin"})
    client.delete(f"{API}/users/{member['id']}", headers=a["headers"])
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute(
            "SELECT action, actor_type, actor_id, organization_id::text FROM audit_events "
            "WHERE target_id = %s ORDER BY id",
            (member["id"],),
        ).fetchall()
    assert [r[0] for r in rows] == ["user.create", "auth.login", "user.update", "user.delete"]
    owner_rows = [r for r in rows if r[0] != "auth.login"]
    assert all(r[1:] == ("user", a["user"]["id"], a["organization"]["id"]) for r in owner_rows)

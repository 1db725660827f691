"""Organizations: admin creation, tenancy, roles, bad input; RLS proven at the database."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import API, add_user, signup
from litestar.testing import TestClient
from support import TestDatabase, assert_problem, bearer, make_api_key

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def test_admin_creates_and_lists_every_organization(client: TestClient, settings: Settings) -> None:
    writer = bearer(make_api_key(settings, ["organizations:write", "organizations:read"]))
    created = client.post(f"{API}/organizations", headers=writer, json={"name": "  Initech "})
    assert created.status_code == 201, created.text
    org = created.json()
    assert org["name"] == "Initech"
    a = signup(client, "A")
    listed = client.get(f"{API}/organizations", headers=writer).json()
    assert {o["id"] for o in listed["items"]} == {org["id"], a["organization"]["id"]}
    got = client.get(f"{API}/organizations/{a['organization']['id']}", headers=writer)
    assert got.status_code == 200
    renamed = client.patch(
        f"{API}/organizations/{org['id']}", headers=writer, json={"name": "Initrode"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Initrode"


def test_scopes_and_users_cannot_create(client: TestClient, settings: Settings) -> None:
    reader = bearer(make_api_key(settings, ["organizations:read"]))
    unrelated = bearer(make_api_key(settings, ["products:write"]))
    a = signup(client)
    assert_problem(client.post(f"{API}/organizations", headers=reader, json={"name": "X"}), 403)
    assert_problem(client.get(f"{API}/organizations", headers=unrelated), 403, "MISSING_SCOPE")
    assert_problem(
        client.patch(
            f"{API}/organizations/{a['organization']['id']}", headers=reader, json={"name": "X"}
        ),
        403,
    )
    assert_problem(
        client.post(f"{API}/organizations", headers=a["headers"], json={"name": "X"}), 403
    )
    assert_problem(client.get(f"{API}/organizations"), 401)


def test_users_see_only_their_own_organization(client: TestClient) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    listed = client.get(f"{API}/organizations", headers=a["headers"]).json()
    assert listed == {"items": [a["organization"]], "next_cursor": None}
    b_url = f"{API}/organizations/{b['organization']['id']}"
    assert_problem(client.get(b_url, headers=a["headers"]), 404, "ORGANIZATION_NOT_FOUND")
    assert_problem(client.patch(b_url, headers=a["headers"], json={"name": "Mine"}), 404)
    assert client.get(b_url, headers=b["headers"]).json()["name"] == "B"


def test_owner_and_admin_rename_members_cannot(client: TestClient, database: TestDatabase) -> None:
    a = signup(client, "A")
    url = f"{API}/organizations/{a['organization']['id']}"
    member = add_user(client, a["headers"])
    admin = add_user(client, a["headers"], "admin")
    assert_problem(client.patch(url, headers=member["headers"], json={"name": "M"}), 403)
    assert client.get(url, headers=member["headers"]).status_code == 200
    assert client.patch(url, headers=admin["headers"], json={"name": "By admin"}).status_code == 200
    renamed = client.patch(url, headers=a["headers"], json={"name": "By owner"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "By owner"
    with psycopg.connect(database.owner_url) as conn:
        updates = conn.execute(
            "SELECT data FROM audit_events WHERE action = 'organization.update' ORDER BY id"
        ).fetchall()
    assert [u[0]["name"]["to"] for u in updates] == ["By admin", "By owner"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 10_000},
        {"name": 5},
        {"name": ["x"]},
        {"name": "ok", "id": str(uuid.uuid4())},
    ],
)
def test_bad_input(client: TestClient, settings: Settings, body: dict) -> None:
    admin = bearer(make_api_key(settings, ["*"]))
    created = client.post(f"{API}/organizations", headers=admin, json=body)
    assert 400 <= created.status_code < 500, created.text
    org = client.post(f"{API}/organizations", headers=admin, json={"name": "Valid"}).json()
    if body:  # an empty PATCH is a valid no-op
        patched = client.patch(f"{API}/organizations/{org['id']}", headers=admin, json=body)
        assert 400 <= patched.status_code < 500, patched.text
        assert patched.json()["code"]


# --- row-level security, at the database ------------------------------------------------------


def test_rls_hides_other_tenants_from_unfiltered_queries(
    client: TestClient, database: TestDatabase
) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    for side in (a, b):
        add_user(client, side["headers"])
        response = client.post(f"{API}/projects", headers=side["headers"], json={"name": "P"})
        assert response.status_code == 201, response.text
    a_org, b_org = a["organization"]["id"], b["organization"]["id"]

    with psycopg.connect(database.app_url) as conn:  # the runtime role, no BYPASSRLS
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (a_org,))
        for table in ("users", "projects", "audit_events"):
            orgs = {str(row[0]) for row in conn.execute(f"SELECT organization_id FROM {table}")}
            assert orgs == {a_org}, table
        assert {str(r[0]) for r in conn.execute("SELECT id FROM organizations")} == {a_org}
        assert b["user"]["email"] not in {r[0] for r in conn.execute("SELECT email FROM users")}
        # Writing into B is refused by the policy's WITH CHECK as well.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO projects (organization_id, name) VALUES (%s, 'x')", (b_org,))
        conn.rollback()
        # Outside any tenant, nothing at all.
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0

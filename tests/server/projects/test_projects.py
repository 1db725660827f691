"""Projects: any member manages them; other organizations are 404; bad input; audit."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from factories import API, add_user, signup
from litestar.testing import TestClient
from support import TestDatabase, assert_problem, bearer, make_api_key

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def create(client: TestClient, headers: dict, name: str = "Apollo", **extra: object) -> dict:
    response = client.post(f"{API}/projects", headers=headers, json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_any_member_manages_projects(client: TestClient, database: TestDatabase) -> None:
    a = signup(client)
    member = add_user(client, a["headers"])
    h = member["headers"]
    project = create(client, h, "  Apollo ", description="Moon")
    assert project["name"] == "Apollo" and project["description"] == "Moon"
    assert project["organization_id"] == a["organization"]["id"]
    url = f"{API}/projects/{project['id']}"
    assert client.get(url, headers=a["headers"]).json() == project
    patched = client.patch(url, headers=h, json={"description": "Mars"})
    assert patched.status_code == 200
    assert patched.json()["description"] == "Mars" and patched.json()["name"] == "Apollo"
    listed = client.get(f"{API}/projects", headers=h).json()
    assert [p["id"] for p in listed["items"]] == [project["id"]]
    assert client.delete(url, headers=h).status_code == 204
    assert_problem(client.get(url, headers=h), 404, "PROJECT_NOT_FOUND")
    with psycopg.connect(database.owner_url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_events WHERE target_id = %s ORDER BY id",
                (project["id"],),
            )
        ]
    assert actions == ["project.create", "project.update", "project.delete"]


def test_projects_of_another_organization_are_404(client: TestClient) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    mine = create(client, a["headers"], "Mine")
    theirs = create(client, b["headers"], "Theirs")
    url = f"{API}/projects/{theirs['id']}"
    assert_problem(client.get(url, headers=a["headers"]), 404)
    assert_problem(client.patch(url, headers=a["headers"], json={"name": "Stolen"}), 404)
    assert_problem(client.delete(url, headers=a["headers"]), 404)
    listed = client.get(f"{API}/projects", headers=a["headers"]).json()["items"]
    assert [p["id"] for p in listed] == [mine["id"]]
    assert client.get(url, headers=b["headers"]).json()["name"] == "Theirs"


def test_projects_are_for_users(client: TestClient, settings: Settings) -> None:
    key = bearer(make_api_key(settings, ["*"]))
    assert_problem(client.get(f"{API}/projects", headers=key), 403)
    assert_problem(client.post(f"{API}/projects", headers=key, json={"name": "X"}), 403)
    assert_problem(client.get(f"{API}/projects"), 401)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 10_000},
        {"name": "ok", "description": "d" * 10_000},
        {"name": 1},
        {"name": "ok", "description": 5},
        {"name": "ok", "organization_id": str(uuid.uuid4())},
        ["name"],
    ],
)
def test_bad_input(client: TestClient, body: object) -> None:
    a = signup(client)
    response = client.post(f"{API}/projects", headers=a["headers"], json=body)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["code"]
    project = create(client, a["headers"])
    if body != {}:  # an empty PATCH is a valid no-op; every other body here is refused
        patched = client.patch(f"{API}/projects/{project['id']}", headers=a["headers"], json=body)
        assert 400 <= patched.status_code < 500, patched.text

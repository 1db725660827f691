"""The audit log API: who sees which events."""

from __future__ import annotations

import pytest
from factories import API, add_user, signup
from litestar.testing import TestClient
from support import assert_problem, bearer, make_api_key

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def test_owner_sees_only_their_organization(client: TestClient) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    client.post(f"{API}/projects", headers=b["headers"], json={"name": "B's"})
    events = client.get(f"{API}/audit-events", headers=a["headers"])
    assert events.status_code == 200, events.text
    items = events.json()["items"]
    assert {e["action"] for e in items} >= {"organization.create", "user.signup"}
    assert {e["organization_id"] for e in items} == {a["organization"]["id"]}
    # Asking for B's events explicitly changes nothing.
    other = client.get(
        f"{API}/audit-events",
        headers=a["headers"],
        params={"organization_id": b["organization"]["id"]},
    )
    assert other.json()["items"] == []
    signup_event = next(e for e in items if e["action"] == "user.signup")
    assert signup_event["actor_type"] == "user"
    assert signup_event["actor_id"] == a["user"]["id"]
    assert signup_event["request_id"] and signup_event["ip"]


def test_admins_and_members_of_an_organization_cannot_read_it(client: TestClient) -> None:
    a = signup(client)
    for role in ("admin", "member"):
        user = add_user(client, a["headers"], role)
        assert_problem(client.get(f"{API}/audit-events", headers=user["headers"]), 403)
    assert_problem(client.get(f"{API}/audit-events"), 401)


def test_admin_key_with_audit_read_sees_all_and_filters(
    client: TestClient, settings: Settings
) -> None:
    a, b = signup(client, "A"), signup(client, "B")
    client.post(f"{API}/projects", headers=b["headers"], json={"name": "P"})
    auditor = bearer(make_api_key(settings, ["audit:read"]))
    everything = client.get(f"{API}/audit-events", headers=auditor, params={"limit": 100})
    orgs = {e["organization_id"] for e in everything.json()["items"]}
    assert {a["organization"]["id"], b["organization"]["id"]} <= orgs
    only_b = client.get(
        f"{API}/audit-events",
        headers=auditor,
        params={"organization_id": b["organization"]["id"], "action": "project.create"},
    ).json()["items"]
    assert [e["action"] for e in only_b] == ["project.create"]

    page = client.get(f"{API}/audit-events", headers=auditor, params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    following = client.get(
        f"{API}/audit-events", headers=auditor, params={"limit": 1, "cursor": page["next_cursor"]}
    ).json()
    assert following["items"][0]["id"] > page["items"][0]["id"]

    no_scope = bearer(make_api_key(settings, ["organizations:read"]))
    assert_problem(client.get(f"{API}/audit-events", headers=no_scope), 403, "MISSING_SCOPE")


def test_bad_query_parameters(client: TestClient, settings: Settings) -> None:
    auditor = bearer(make_api_key(settings, ["audit:read"]))
    for params in (
        {"organization_id": "nope"},
        {"limit": 0},
        {"limit": 1000},
        {"cursor": "garbage!"},
        {"action": "a" * 10_000},
    ):
        response = client.get(f"{API}/audit-events", headers=auditor, params=params)
        assert 400 <= response.status_code < 500, (params, response.text)

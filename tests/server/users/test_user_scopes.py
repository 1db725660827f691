"""Admin API keys manage people only within the powers they hold.

A key that may create a person with a password it chose can log in as that person and do
whatever that person's role allows. So giving someone a role (creating them, promoting
them) and changing or removing someone needs a key that holds every scope the role's
powers map to (``server.auth.principal.ROLE_SCOPES``), or ``*``.
"""

from __future__ import annotations

import pytest
from factories import API, PASSWORD, add_user, login, signup
from litestar.testing import TestClient
from support import assert_problem, bearer, make_api_key

from server.auth.principal import ROLE_SCOPES
from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def _person(org_id: str, role: str, email: str = "mallory@example.com") -> dict:
    return {
        "email": email,
        "full_name": "Mallory",
        "password": PASSWORD,
        "role": role,
        "organization_id": org_id,
    }


def test_the_organizations_write_owner_exploit_is_refused(
    client: TestClient, settings: Settings
) -> None:
    """The reported chain: a key with only organizations:write made an owner with a
    password it chose, logged in as that owner, and read licenses and audit events it was
    refused directly."""
    victim = signup(client, "Victim")
    org_id = victim["organization"]["id"]
    key = bearer(make_api_key(settings, ["organizations:write"]))
    assert_problem(client.get(f"{API}/licenses", headers=key), 403, "MISSING_SCOPE")
    assert_problem(client.get(f"{API}/audit-events", headers=key), 403, "MISSING_SCOPE")

    for role in ("owner", "admin", "member"):
        made = client.post(f"{API}/users", headers=key, json=_person(org_id, role))
        assert_problem(made, 403, "MISSING_SCOPE")
    assert_problem(login(client, "mallory@example.com"), 401, "INVALID_CREDENTIALS")
    users = client.get(f"{API}/users", headers=victim["headers"]).json()["items"]
    assert [u["email"] for u in users] == [victim["user"]["email"]]


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_a_user_writing_key_must_hold_every_scope_of_the_role_it_gives(
    client: TestClient, settings: Settings, role: str
) -> None:
    org_id = signup(client, "Victim")["organization"]["id"]
    needed = sorted(ROLE_SCOPES[role] | {"users:write"})
    for missing in sorted(ROLE_SCOPES[role] - {"users:write"}):  # the route needs that one
        short = bearer(make_api_key(settings, [s for s in needed if s != missing]))
        refused = client.post(f"{API}/users", headers=short, json=_person(org_id, role))
        assert_problem(refused, 403, "SCOPE_ESCALATION")
        assert missing in refused.json()["detail"]
    assert_problem(login(client, "mallory@example.com"), 401, "INVALID_CREDENTIALS")

    enough = bearer(make_api_key(settings, needed))
    made = client.post(f"{API}/users", headers=enough, json=_person(org_id, role))
    assert made.status_code == 201, made.text
    assert made.json()["role"] == role
    assert login(client, "mallory@example.com").status_code == 200


def test_the_owner_role_maps_to_everything_an_owner_can_reach(client: TestClient) -> None:
    """Owners read licenses and audit events and mint license tokens; admins manage
    people; every role reads its organization and licenses."""
    assert {"licenses:read", "audit:read", "users:write"} <= ROLE_SCOPES["owner"]
    assert ROLE_SCOPES["member"] <= ROLE_SCOPES["admin"] <= ROLE_SCOPES["owner"]
    assert "audit:read" not in ROLE_SCOPES["admin"]


def test_promoting_needs_the_scopes_of_the_new_role(client: TestClient, settings: Settings) -> None:
    """Create a member the key may create, then promote them: refused without owner
    scopes, so the two steps together do not get around the rule."""
    org = signup(client, "Victim")
    member_scopes = sorted(ROLE_SCOPES["member"] | {"users:write"})
    key = bearer(make_api_key(settings, member_scopes))
    made = client.post(
        f"{API}/users", headers=key, json=_person(org["organization"]["id"], "member")
    )
    assert made.status_code == 201, made.text
    url = f"{API}/users/{made.json()['id']}"
    for role in ("admin", "owner"):
        assert_problem(client.patch(url, headers=key, json={"role": role}), 403, "SCOPE_ESCALATION")
    assert client.get(url, headers=org["headers"]).json()["role"] == "member"

    owner_key = bearer(make_api_key(settings, sorted(ROLE_SCOPES["owner"])))
    promoted = client.patch(url, headers=owner_key, json={"role": "owner"})
    assert promoted.status_code == 200, promoted.text


def test_a_key_changes_or_removes_only_people_within_its_scopes(
    client: TestClient, settings: Settings
) -> None:
    org = signup(client, "Victim")
    owner_url = f"{API}/users/{org['user']['id']}"
    second_owner = add_user(client, org["headers"], "owner")
    key = bearer(make_api_key(settings, sorted(ROLE_SCOPES["admin"])))
    assert_problem(
        client.patch(owner_url, headers=key, json={"role": "member"}), 403, "SCOPE_ESCALATION"
    )
    assert_problem(
        client.patch(owner_url, headers=key, json={"full_name": "X"}), 403, "SCOPE_ESCALATION"
    )
    assert_problem(
        client.delete(f"{API}/users/{second_owner['id']}", headers=key), 403, "SCOPE_ESCALATION"
    )
    member = add_user(client, org["headers"])
    assert client.delete(f"{API}/users/{member['id']}", headers=key).status_code == 204


def test_an_all_scopes_key_manages_everyone(client: TestClient, admin_key: str) -> None:
    org_id = signup(client, "Victim")["organization"]["id"]
    made = client.post(f"{API}/users", headers=bearer(admin_key), json=_person(org_id, "owner"))
    assert made.status_code == 201, made.text

"""The portal's named-user seats (``portal/_license_users.html``): everyone sees who is
assigned; owners and admins assign and unassign members with CSRF-protected forms, through
the same service as the API (the same limit, the same seat freeing)."""

from __future__ import annotations

import uuid

import factories
import pytest
from litestar.testing import TestClient
from support import assert_problem, csrf_field

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PRODUCT = "cloud_ide_portal"


def portal_login(client: TestClient, email: str) -> str:
    client.cookies.clear()
    token = csrf_field(client.get("/portal/login").text)
    response = client.post(
        "/portal/login",
        data={"email": email, "password": factories.PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return token


def test_managers_assign_and_unassign_members(client: TestClient, owner_db, sql) -> None:
    factories.product(owner_db, PRODUCT, {"team": factories.Tier(seat_kind="user", max_users=1)})
    owner = factories.signup(client, "Initech")
    org = uuid.UUID(owner["organization"]["id"])
    alice = factories.add_user(client, owner["headers"], "member")
    bob = factories.add_user(client, owner["headers"], "member")
    lic = factories.license(owner_db, org, PRODUCT, "team")
    page_url = f"/portal/licenses/{lic.id}"

    # a member sees the (empty) list, no form, and may not assign
    token = portal_login(client, alice["email"])
    page = client.get(page_url)
    assert "Named users" in page.text and "No user is assigned" in page.text
    assert 'action="/portal/licenses/' + str(lic.id) + '/users"' not in page.text
    refused = client.post(f"{page_url}/users", data={"user_id": alice["id"], "_csrf_token": token})
    assert refused.status_code == 403

    # the owner assigns Alice; the form offers the members not assigned yet
    token = portal_login(client, owner["user"]["email"])
    page = client.get(page_url)
    assert alice["email"] in page.text and bob["email"] in page.text  # the select's options
    no_csrf = client.post(f"{page_url}/users", data={"user_id": alice["id"]})
    assert no_csrf.status_code == 403
    assigned = client.post(f"{page_url}/users", data={"user_id": alice["id"], "_csrf_token": token})
    assert assigned.status_code == 200, assigned.text
    assert "1 of 1 users assigned" in assigned.text and "Unassign" in assigned.text
    assert 'name="user_id"' not in assigned.text  # full: no form
    over = client.post(f"{page_url}/users", data={"user_id": bob["id"], "_csrf_token": token})
    assert over.status_code == 409 and "unassign someone first" in over.text
    bad = client.post(f"{page_url}/users", data={"user_id": "nope", "_csrf_token": token})
    assert bad.status_code == 422

    # Alice activates a machine with her own account; unassigning her frees it
    activated = client.post(
        "/api/v1/licenses/activate",
        json={"license_key": lic.key, "product": PRODUCT, "fingerprint": "alice-laptop"},
        headers=alice["headers"],
    )
    assert activated.status_code == 201, activated.text
    removed = client.post(f"{page_url}/users/{alice['id']}/remove", data={"_csrf_token": token})
    assert removed.status_code == 200
    assert "No user is assigned" in removed.text
    assert sql.live(lic.id) == 0
    assert (
        sql.one("SELECT actor_type FROM audit_events WHERE action = 'license.user_unassign'")
        == "user"
    )


def test_a_machine_license_page_has_no_user_section(client: TestClient, make_license) -> None:
    owner = factories.signup(client, "Initech")
    made = make_license(organization_id=uuid.UUID(owner["organization"]["id"]))
    portal_login(client, owner["user"]["email"])
    page = client.get(f"/portal/licenses/{made.id}")
    assert page.status_code == 200 and "Named users" not in page.text


def test_another_organizations_license_is_404(client: TestClient, owner_db) -> None:
    factories.product(owner_db, PRODUCT, {"team": factories.Tier(seat_kind="user", max_users=1)})
    theirs = factories.license(owner_db, factories.organization(owner_db), PRODUCT, "team")
    owner = factories.signup(client, "Initech")
    token = portal_login(client, owner["user"]["email"])
    response = client.post(
        f"/portal/licenses/{theirs.id}/users",
        data={"user_id": owner["user"]["id"], "_csrf_token": token},
    )
    assert response.status_code == 404
    assert_problem(client.get(f"/api/v1/licenses/{theirs.id}/users", headers=owner["headers"]), 404)

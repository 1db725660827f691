"""The portal in process (TestClient): the API's accounts, the organization's own licenses
and machines only, managers free seats, air-gapped activation files, projects, members."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from litestar.testing import TestClient
from people import PASSWORD, add_user, signup
from support import assert_problem, csrf_field

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def portal_login(client: TestClient, email: str) -> str:
    client.cookies.clear()
    token = csrf_field(client.get("/portal/login").text)
    response = client.post(
        "/portal/login",
        data={"email": email, "password": PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return token


def activate(client: TestClient, key: str, name: str) -> dict:
    fingerprint = uuid.uuid4().hex
    response = client.post(
        "/api/v1/licenses/activate",
        json={"license_key": key, "product": "local_cli", "fingerprint": fingerprint, "name": name},
    )
    assert response.status_code == 201, response.text
    return {**response.json(), "fingerprint": fingerprint}


def test_signup_through_the_portal(client: TestClient) -> None:
    token = csrf_field(client.get("/portal/signup").text)
    response = client.post(
        "/portal/signup",
        data={
            "organization_name": "Globex",
            "full_name": "Hank",
            "email": "hank@globex.test",
            "password": PASSWORD,
            "_csrf_token": token,
        },
    )
    assert response.status_code == 200
    assert "Globex: licenses" in response.text
    api = client.post(
        "/api/v1/auth/login", json={"email": "hank@globex.test", "password": PASSWORD}
    )
    assert api.status_code == 200  # the same account as the API's


def test_own_licenses_only(client: TestClient, make_license) -> None:
    owner = signup(client, "Initech")
    org = uuid.UUID(owner["user"]["organization_id"])
    ours = make_license(organization_id=org)
    theirs = make_license()
    portal_login(client, owner["user"]["email"])
    listing = client.get("/portal")
    assert ours.key[:8] in listing.text and theirs.key[:8] not in listing.text
    assert ours.key not in listing.text  # the prefix only
    assert client.get(f"/portal/licenses/{ours.id}").status_code == 200
    assert client.get(f"/portal/licenses/{theirs.id}").status_code == 404


def test_manager_frees_a_seat_member_cannot(client: TestClient, make_license) -> None:
    owner = signup(client, "Initech")
    member = add_user(client, owner["headers"], "member")
    made = make_license(organization_id=uuid.UUID(owner["user"]["organization_id"]))
    seat = activate(client, made.key, "build-agent")

    token = portal_login(client, member["email"])
    page = client.get(f"/portal/licenses/{made.id}")
    assert "build-agent" in page.text and "Free this seat" not in page.text
    path = f"/portal/licenses/{made.id}/machines/{seat['activation_id']}/free"
    refused = client.post(path, data={"_csrf_token": token})
    assert refused.status_code == 403

    token = portal_login(client, owner["user"]["email"])
    assert "Free this seat" in client.get(f"/portal/licenses/{made.id}").text
    freed = client.post(path, data={"_csrf_token": token})
    assert freed.status_code == 200 and "freed" in freed.text
    check_in = client.post(
        "/api/v1/licenses/check-in",
        json={"license_key": made.key, "product": "local_cli", "fingerprint": seat["fingerprint"]},
    )
    assert_problem(check_in, 404, "NOT_ACTIVATED")


def test_offline_activation_file(client: TestClient, make_license) -> None:
    owner = signup(client, "Initech")
    made = make_license(organization_id=uuid.UUID(owner["user"]["organization_id"]))
    other = make_license()
    token = portal_login(client, owner["user"]["email"])
    request_file = {
        "type": "activation_request",
        "version": 1,
        "product": "local_cli",
        "fingerprint": "air-gapped-1",
        "license_key": made.key,
        "name": "lab-pc",
        "nonce": "n-1",
        "created_at": "2026-11-30T10:00:00Z",
    }
    answer = client.post(
        f"/portal/licenses/{made.id}/offline",
        data={"_csrf_token": token},
        files={"request_file": ("req.json", json.dumps(request_file), "application/json")},
    )
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    body = answer.json()
    assert body["type"] == "activation_response" and body["nonce"] == "n-1"
    assert body["token"].count(".") == 2
    # A request for another organization's license is refused here.
    request_file["license_key"] = other.key
    refused = client.post(
        f"/portal/licenses/{made.id}/offline",
        data={"_csrf_token": token},
        files={"request_file": ("req.json", json.dumps(request_file), "application/json")},
    )
    assert refused.status_code == 422 and "REQUEST_FOR_ANOTHER_LICENSE" in refused.text


def test_projects_and_members(client: TestClient) -> None:
    owner = signup(client, "Initech")
    token = portal_login(client, owner["user"]["email"])
    created = client.post(
        "/portal/projects", data={"name": "Apollo", "description": "x", "_csrf_token": token}
    )
    assert "Apollo" in created.text
    project_id = re.search(r'action="/portal/projects/([0-9a-f-]{36})"', created.text).group(1)
    renamed = client.post(
        f"/portal/projects/{project_id}", data={"name": "Artemis", "_csrf_token": token}
    )
    assert "Artemis" in renamed.text and "Apollo" not in renamed.text
    deleted = client.post(f"/portal/projects/{project_id}/delete", data={"_csrf_token": token})
    assert "Artemis" not in deleted.text

    added = client.post(
        "/portal/members",
        data={
            "email": "new@initech.test",
            "full_name": "Newcomer",
            "password": PASSWORD,
            "role": "member",
            "_csrf_token": token,
        },
    )
    assert added.status_code == 200 and "new@initech.test" in added.text
    user_id = re.search(r'action="/portal/members/([0-9a-f-]{36})/role"', added.text).group(1)
    promoted = client.post(
        f"/portal/members/{user_id}/role", data={"role": "admin", "_csrf_token": token}
    )
    assert promoted.status_code == 200
    removed = client.post(f"/portal/members/{user_id}/remove", data={"_csrf_token": token})
    assert "new@initech.test" not in removed.text


def test_logging_out_everywhere_through_the_api_ends_portal_sessions(client: TestClient) -> None:
    owner = signup(client, "Initech")
    portal_login(client, owner["user"]["email"])
    assert client.get("/portal").status_code == 200
    client.post("/api/v1/auth/logout-all", headers=owner["headers"])
    response = client.get("/portal", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/portal/login"


def test_a_new_password_ends_portal_and_api_sessions(client: TestClient) -> None:
    owner = signup(client, "Initech")
    token = portal_login(client, owner["user"]["email"])
    changed = client.post(
        "/portal/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new passphrase",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/portal/login"
    assert client.get("/api/v1/auth/me", headers=owner["headers"]).status_code == 401
    client.cookies.clear()
    token = csrf_field(client.get("/portal/login").text)
    again = client.post(
        "/portal/login",
        data={
            "email": owner["user"]["email"],
            "password": "a brand new passphrase",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert again.status_code == 303


def test_another_organizations_ids_are_not_found(client: TestClient) -> None:
    theirs = signup(client, "Umbrella")
    project = client.post(
        "/api/v1/projects", headers=theirs["headers"], json={"name": "Hive", "description": ""}
    )
    assert project.status_code == 201, project.text
    ours = signup(client, "Initech")
    token = portal_login(client, ours["user"]["email"])
    project_id, user_id = project.json()["id"], theirs["user"]["id"]
    for path, data in (
        (f"/portal/projects/{project_id}", {"name": "Mine now"}),
        (f"/portal/projects/{project_id}/delete", {}),
        (f"/portal/members/{user_id}/role", {"role": "member"}),
        (f"/portal/members/{user_id}/remove", {}),
    ):
        response = client.post(path, data={**data, "_csrf_token": token})
        assert response.status_code == 404, (path, response.text)
    listed = client.get("/api/v1/projects", headers=theirs["headers"]).json()["items"]
    assert [p["name"] for p in listed] == ["Hive"]

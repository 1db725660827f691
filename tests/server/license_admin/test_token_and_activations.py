"""The offline license token, and the machines activated on a license."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from licentia_verifier import Verifier
from support import assert_problem, bearer, make_api_key


def test_token_verifies_offline(client, settings, admin_key, issue, make_org, user_headers):
    org = make_org()
    created = issue(org, features={"sso": True})
    for headers in (bearer(admin_key), user_headers(org, "owner"), user_headers(org, "admin")):
        response = client.get(f"/api/v1/licenses/{created['id']}/token", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        jwks = client.get("/.well-known/jwks.json").json()
        verifier = Verifier.from_jwks(jwks, product="local_cli", issuer=settings.issuer)
        verified = verifier.verify_license(body["token"])
        assert verified.license_id == created["id"]
        assert verified.organization_id == str(org)
        assert verified.tier == "pro"
        assert dict(verified.features) == created["features"]
        assert verified.max_activations == 3
        assert verified.license_expires_at is not None
        expected = datetime.now(UTC) + timedelta(seconds=settings.license_token_ttl_seconds)
        assert abs(datetime.fromisoformat(body["expires_at"]) - expected) < timedelta(minutes=5)


def test_token_of_a_license_ending_soon_ends_with_it(client, admin_key, issue, make_org):
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    created = issue(make_org(), expires_at=soon.isoformat())
    body = client.get(f"/api/v1/licenses/{created['id']}/token", headers=bearer(admin_key)).json()
    assert datetime.fromisoformat(body["expires_at"]) == soon


def test_token_refused_when_the_license_cannot_be_used(
    client, admin_key, issue, make_org, owner_db
):
    org = make_org()
    auth = bearer(admin_key)
    suspended, revoked, expired, future = (issue(org)["id"] for _ in range(4))
    client.post(f"/api/v1/licenses/{suspended}/suspend", headers=auth)
    client.post(f"/api/v1/licenses/{revoked}/revoke", headers=auth)
    owner_db.execute(
        "UPDATE licenses SET expires_at = now() - interval '1 hour' WHERE id = %s", (expired,)
    )
    owner_db.execute(
        "UPDATE licenses SET starts_at = now() + interval '1 day' WHERE id = %s", (future,)
    )
    for lic, code in (
        (suspended, "LICENSE_SUSPENDED"),
        (revoked, "LICENSE_REVOKED"),
        (expired, "LICENSE_EXPIRED"),
        (future, "LICENSE_NOT_YET_VALID"),
    ):
        assert_problem(client.get(f"/api/v1/licenses/{lic}/token", headers=auth), 403, code)


def test_token_needs_a_manager_or_the_scope(client, settings, issue, make_org, user_headers):
    org = make_org()
    lic = issue(org)["id"]
    assert_problem(
        client.get(f"/api/v1/licenses/{lic}/token", headers=user_headers(org, "member")), 403
    )
    no_scope = bearer(make_api_key(settings, ["products:read"]))
    assert_problem(client.get(f"/api/v1/licenses/{lic}/token", headers=no_scope), 403)


@pytest.fixture
def seats(issue, make_org, add_activation):
    """A pro license (3 seats, 7 grace days) with machines in every state."""
    org = make_org()
    lic = issue(org)
    now = datetime.now(UTC)
    ids = {
        "live": add_activation(lic),
        "lapsed_in_grace": add_activation(lic, lease_expires_at=now - timedelta(days=3)),
        "lapsed_past_grace": add_activation(lic, lease_expires_at=now - timedelta(days=8)),
        "deactivated": add_activation(lic, deactivated_at=now - timedelta(days=3)),
    }
    return org, lic, ids


def test_activations_count_and_list(client, admin_key, seats, user_headers):
    org, lic, ids = seats
    read = client.get(f"/api/v1/licenses/{lic['id']}", headers=bearer(admin_key)).json()
    assert read["activations_count"] == 2
    listed = client.get("/api/v1/licenses", headers=bearer(admin_key)).json()["items"]
    assert listed[0]["activations_count"] == 2
    for headers in (bearer(admin_key), user_headers(org, "member")):
        response = client.get(f"/api/v1/licenses/{lic['id']}/activations", headers=headers)
        assert response.status_code == 200, response.text
        by_id = {item["id"]: item for item in response.json()["items"]}
        assert {name: by_id[str(i)]["holds_seat"] for name, i in ids.items()} == {
            "live": True,
            "lapsed_in_grace": True,
            "lapsed_past_grace": False,
            "deactivated": False,
        }
    page = client.get(
        f"/api/v1/licenses/{lic['id']}/activations",
        params={"limit": 3},
        headers=bearer(admin_key),
    ).json()
    assert len(page["items"]) == 3
    assert page["next_cursor"]


def test_owner_and_admin_free_seats_members_cannot(client, seats, user_headers, owner_db):
    org, lic, ids = seats
    path = f"/api/v1/licenses/{lic['id']}/activations"
    assert_problem(
        client.delete(f"{path}/{ids['live']}", headers=user_headers(org, "member")),
        403,
        "INSUFFICIENT_ROLE",
    )
    response = client.delete(f"{path}/{ids['live']}", headers=user_headers(org, "owner"))
    assert response.status_code == 204, response.text
    row = owner_db.execute(
        "SELECT deactivated_at IS NOT NULL, deactivation_reason FROM activations WHERE id = %s",
        (ids["live"],),
    ).fetchone()
    assert row == (True, "user")
    assert_problem(
        client.delete(f"{path}/{ids['live']}", headers=user_headers(org, "admin")),
        409,
        "ALREADY_DEACTIVATED",
    )
    audit = owner_db.execute(
        "SELECT actor_type, organization_id, data FROM audit_events "
        "WHERE action = 'activation.deactivate'"
    ).fetchall()
    assert audit == [("user", org, {"license_id": lic["id"], "reason": "user"})]


def test_admin_key_frees_seats_and_the_count_drops(client, settings, admin_key, seats, owner_db):
    _, lic, ids = seats
    path = f"/api/v1/licenses/{lic['id']}/activations"
    read_only = bearer(make_api_key(settings, ["licenses:read"]))
    assert_problem(client.delete(f"{path}/{ids['live']}", headers=read_only), 403)
    assert client.delete(f"{path}/{ids['live']}", headers=bearer(admin_key)).status_code == 204
    reason = owner_db.execute(
        "SELECT deactivation_reason FROM activations WHERE id = %s", (ids["live"],)
    ).fetchone()[0]
    assert reason == "admin"
    read = client.get(f"/api/v1/licenses/{lic['id']}", headers=bearer(admin_key)).json()
    assert read["activations_count"] == 1


def test_users_are_held_to_the_daily_deactivation_limit(
    client, admin_key, issue, make_org, add_activation, user_headers
):
    org = make_org()
    lic = issue(org)  # the test tier allows 2 deactivations a day
    machines = [add_activation(lic) for _ in range(4)]
    owner = user_headers(org, "owner")
    path = f"/api/v1/licenses/{lic['id']}/activations"
    assert client.delete(f"{path}/{machines[0]}", headers=owner).status_code == 204
    assert client.delete(f"{path}/{machines[1]}", headers=owner).status_code == 204
    assert_problem(client.delete(f"{path}/{machines[2]}", headers=owner), 409, "DEACTIVATION_LIMIT")
    # The vendor's admins are not limited.
    assert client.delete(f"{path}/{machines[2]}", headers=bearer(admin_key)).status_code == 204


def test_activations_of_other_tenants_and_licenses_are_404(
    client, admin_key, seats, issue, make_org, user_headers
):
    _, lic, ids = seats
    other_org = make_org("B")
    other_lic = issue(other_org)
    owner_b = user_headers(other_org, "owner")
    path = f"/api/v1/licenses/{lic['id']}/activations"
    assert_problem(client.get(path, headers=owner_b), 404, "LICENSE_NOT_FOUND")
    assert_problem(client.delete(f"{path}/{ids['live']}", headers=owner_b), 404)
    # B's owner naming their own license with A's activation: still nothing.
    assert_problem(
        client.delete(
            f"/api/v1/licenses/{other_lic['id']}/activations/{ids['live']}", headers=owner_b
        ),
        404,
        "ACTIVATION_NOT_FOUND",
    )
    assert_problem(
        client.delete(f"{path}/{uuid.uuid4()}", headers=bearer(admin_key)),
        404,
        "ACTIVATION_NOT_FOUND",
    )


def test_expired_leases_and_vendor_actions_do_not_use_up_the_daily_limit(
    client, admin_key, issue, make_org, add_activation, user_headers, owner_db
):
    """Only seats the customer freed count, the same rule as the licensing API's deactivate."""
    org = make_org()
    lic = issue(org)  # the test tier allows 2 deactivations a day
    recently = datetime.now(UTC) - timedelta(hours=1)
    for reason in ("lease_expired", "lease_expired", "admin"):
        released = add_activation(lic, deactivated_at=recently)
        owner_db.execute(
            "UPDATE activations SET deactivation_reason = %s WHERE id = %s", (reason, released)
        )
    machine = add_activation(lic)
    owner = user_headers(org, "owner")
    path = f"/api/v1/licenses/{lic['id']}/activations/{machine}"
    assert client.delete(path, headers=owner).status_code == 204

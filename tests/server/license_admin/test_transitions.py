"""suspend / reinstate / revoke / renew: every allowed and every refused transition."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from support import assert_problem, bearer


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def act(client, admin_key):
    def call(license_id: str, action: str, body: dict | None = None):
        return client.post(
            f"/api/v1/licenses/{license_id}/{action}", json=body, headers=bearer(admin_key)
        )

    return call


def test_suspend_reinstate_revoke(act, issue, make_org, owner_db):
    lic = issue(make_org())["id"]
    assert_problem(act(lic, "reinstate"), 409, "NOT_SUSPENDED")
    suspended = act(lic, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert_problem(act(lic, "suspend"), 409, "ALREADY_SUSPENDED")
    reinstated = act(lic, "reinstate")
    assert reinstated.status_code == 200
    assert reinstated.json()["status"] == "active"
    revoked = act(lic, "revoke")
    assert revoked.json()["status"] == "revoked"
    assert_problem(act(lic, "revoke"), 409, "ALREADY_REVOKED")
    assert_problem(act(lic, "suspend"), 409, "LICENSE_REVOKED")
    assert_problem(act(lic, "reinstate"), 409, "LICENSE_REVOKED")
    assert_problem(act(lic, "renew", {"duration_days": 30}), 409, "LICENSE_REVOKED")
    actions = [
        row[0]
        for row in owner_db.execute(
            "SELECT action FROM audit_events WHERE target_id = %s ORDER BY id", (lic,)
        )
    ]
    assert actions == ["license.issue", "license.suspend", "license.reinstate", "license.revoke"]


def test_revoke_a_suspended_license_and_patch_after_revoke(act, client, admin_key, issue, make_org):
    lic = issue(make_org())["id"]
    act(lic, "suspend")
    assert act(lic, "revoke").json()["status"] == "revoked"
    assert_problem(
        client.patch(f"/api/v1/licenses/{lic}", json={"metadata": {}}, headers=bearer(admin_key)),
        409,
        "LICENSE_REVOKED",
    )


def test_unknown_license(act, catalog):
    for action in ("suspend", "reinstate", "revoke"):
        assert_problem(act(str(uuid.uuid4()), action), 404, "LICENSE_NOT_FOUND")
    assert_problem(act(str(uuid.uuid4()), "renew", {"duration_days": 1}), 404, "LICENSE_NOT_FOUND")


def test_renew_by_days_extends_from_the_current_expiry(act, issue, make_org, owner_db):
    created = issue(make_org(), duration_days=10)
    renewed = act(created["id"], "renew", {"duration_days": 30})
    assert renewed.status_code == 200, renewed.text
    assert _at(renewed.json()["expires_at"]) == _at(created["expires_at"]) + timedelta(days=30)
    data = owner_db.execute(
        "SELECT data FROM audit_events WHERE action = 'license.renew'"
    ).fetchone()[0]
    assert _at(data["expires_at"]) == _at(renewed.json()["expires_at"])


def test_renew_an_expired_license_counts_from_now(act, issue, make_org, owner_db):
    created = issue(make_org())
    owner_db.execute(
        "UPDATE licenses SET expires_at = now() - interval '100 days' WHERE id = %s",
        (created["id"],),
    )
    renewed = act(created["id"], "renew", {"duration_days": 30}).json()
    assert renewed["status"] == "active"
    expected = datetime.now(UTC) + timedelta(days=30)
    assert abs(_at(renewed["expires_at"]) - expected) < timedelta(minutes=5)


def test_renew_to_a_date(act, issue, make_org):
    created = issue(make_org(), duration_days=10)
    renewed = act(created["id"], "renew", {"expires_at": "2099-12-31T00:00:00Z"})
    assert _at(renewed.json()["expires_at"]) == datetime(2099, 12, 31, tzinfo=UTC)
    assert_problem(
        act(created["id"], "renew", {"expires_at": "2099-01-01T00:00:00Z"}),
        422,
        "RENEWAL_NOT_LATER",
    )
    assert_problem(
        act(created["id"], "renew", {"expires_at": "2001-01-01T00:00:00Z"}),
        422,
        "RENEWAL_NOT_LATER",
    )


def test_renew_refusals(act, issue, make_org):
    org = make_org()
    lic = issue(org)["id"]
    assert_problem(act(lic, "renew", {}), 422, "RENEW_TERM")
    assert_problem(
        act(lic, "renew", {"duration_days": 3, "expires_at": "2099-01-01T00:00:00Z"}),
        422,
        "RENEW_TERM",
    )
    perpetual = issue(org, tier="free")["id"]
    assert_problem(act(perpetual, "renew", {"duration_days": 3}), 409, "LICENSE_PERPETUAL")


def test_a_suspended_license_can_be_renewed_and_stays_suspended(act, issue, make_org):
    lic = issue(make_org())["id"]
    act(lic, "suspend")
    renewed = act(lic, "renew", {"duration_days": 1})
    assert renewed.status_code == 200
    assert renewed.json()["status"] == "suspended"

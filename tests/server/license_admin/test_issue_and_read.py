"""Issuing licenses, reading and listing them, tenancy, scopes, and PATCH."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

from support import assert_problem, bearer, make_api_key

KEY_RE = re.compile(r"^LK(-[0-9A-HJKMNP-TV-Z]{5}){7}$")


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_issue_returns_the_key_once_and_stores_only_its_hash(
    client, admin_key, issue, make_org, owner_db
):
    org = make_org()
    created = issue(org, metadata={"order": "INV-1"})
    key = created["key"]
    assert KEY_RE.match(key)
    assert created["key_prefix"] == key[:8]
    assert created["status"] == "active"
    assert created["organization_id"] == str(org)
    assert (created["product"], created["tier"]) == ("local_cli", "pro")
    assert created["max_activations"] == 3
    assert created["activations_count"] == 0
    assert created["metadata"] == {"order": "INV-1"}

    read = client.get(f"/api/v1/licenses/{created['id']}", headers=bearer(admin_key)).json()
    assert "key" not in read
    assert read == {k: v for k, v in created.items() if k != "key"}
    listed = client.get("/api/v1/licenses", headers=bearer(admin_key)).json()
    assert all("key" not in item for item in listed["items"])

    row = owner_db.execute(
        "SELECT key_hash, l::text FROM licenses l WHERE id = %s", (created["id"],)
    ).fetchone()
    assert bytes(row[0]) == hashlib.sha256(key.encode()).digest()
    secret_part = key.split("-", 2)[2]
    for (text,) in owner_db.execute(
        "SELECT l::text FROM licenses l UNION ALL SELECT a::text FROM audit_events a"
    ):
        assert secret_part not in text
    audit = owner_db.execute(
        "SELECT actor_type, organization_id, target_id FROM audit_events "
        "WHERE action = 'license.issue'"
    ).fetchall()
    assert audit == [("api_key", org, created["id"])]


def test_expiry_defaults(issue, make_org):
    org = make_org()
    now = datetime.now(UTC)
    from_tier = issue(org, tier="pro")
    assert abs(_at(from_tier["expires_at"]) - (now + timedelta(days=365))) < timedelta(minutes=5)
    from_days = issue(org, tier="pro", duration_days=30)
    assert abs(_at(from_days["expires_at"]) - (now + timedelta(days=30))) < timedelta(minutes=5)
    exact = issue(org, tier="free", expires_at="2099-01-02T03:04:05Z")
    assert _at(exact["expires_at"]) == datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)
    perpetual = issue(org, tier="free")
    assert perpetual["expires_at"] is None
    assert perpetual["status"] == "active"


def test_overrides_overlay_the_tier(issue, make_org):
    created = issue(
        make_org(), tier="pro", max_activations=10, features={"support": "priority", "sso": True}
    )
    assert created["max_activations"] == 10
    assert created["features"] == {
        "plugins": True,
        "max_projects": 50,
        "support": "priority",
        "sso": True,
    }


def test_issue_refusals_have_codes(client, admin_key, catalog, make_org):
    org = str(make_org())
    base = {"organization_id": org, "product": "local_cli", "tier": "pro"}
    cases = [
        ({**base, "product": "nope"}, "UNKNOWN_PRODUCT"),
        ({**base, "tier": "nope"}, "UNKNOWN_TIER"),
        ({**base, "organization_id": str(uuid.uuid4())}, "UNKNOWN_ORGANIZATION"),
        ({**base, "duration_days": 5, "expires_at": "2099-01-01T00:00:00Z"}, "CONFLICTING_EXPIRY"),
        ({**base, "expires_at": "2001-01-01T00:00:00Z"}, "EXPIRES_IN_PAST"),
        ({**base, "metadata": {"blob": "x" * 9000}}, "METADATA_TOO_LARGE"),
        ({**base, "metadata": {"nested": {"a": "nul\u0000"}}}, "INVALID_METADATA"),
    ]
    for body, code in cases:
        assert_problem(
            client.post("/api/v1/licenses", json=body, headers=bearer(admin_key)), 422, code
        )


def test_scopes_and_roles(client, settings, issue, make_org, user_headers):
    org = make_org()
    created = issue(org)
    body = {"organization_id": str(org), "product": "local_cli", "tier": "pro"}
    assert_problem(client.post("/api/v1/licenses", json=body), 401)
    assert_problem(client.get("/api/v1/licenses"), 401)
    read_only = bearer(make_api_key(settings, ["licenses:read"]))
    assert_problem(
        client.post("/api/v1/licenses", json=body, headers=read_only), 403, "MISSING_SCOPE"
    )
    assert client.get(f"/api/v1/licenses/{created['id']}", headers=read_only).status_code == 200
    products_only = bearer(make_api_key(settings, ["products:read"]))
    assert_problem(client.get("/api/v1/licenses", headers=products_only), 403, "MISSING_SCOPE")
    owner = user_headers(org, "owner")
    assert_problem(client.post("/api/v1/licenses", json=body, headers=owner), 403)
    path = f"/api/v1/licenses/{created['id']}"
    assert_problem(client.patch(path, json={"metadata": {}}, headers=owner), 403)
    for action in ("suspend", "reinstate", "revoke"):
        assert_problem(client.post(f"{path}/{action}", headers=owner), 403)
        assert_problem(client.post(f"{path}/{action}", headers=read_only), 403)
    assert_problem(client.post(f"{path}/renew", json={"duration_days": 1}, headers=owner), 403)


def test_users_see_only_their_organization(client, admin_key, issue, make_org, user_headers):
    org_a, org_b = make_org("A"), make_org("B")
    mine = issue(org_a)
    theirs = issue(org_b)
    member_a = user_headers(org_a, "member")
    member_b = user_headers(org_b, "member")
    owner_a = user_headers(org_a, "owner")

    listed = client.get("/api/v1/licenses", headers=member_a).json()
    assert [item["id"] for item in listed["items"]] == [mine["id"]]
    # Asking for another organization does not widen the view.
    spying = client.get(
        "/api/v1/licenses", params={"organization_id": str(org_b)}, headers=member_a
    ).json()
    assert spying["items"] == []
    assert client.get(f"/api/v1/licenses/{mine['id']}", headers=member_a).status_code == 200
    for path in ("", "/activations", "/token"):
        assert_problem(
            client.get(f"/api/v1/licenses/{theirs['id']}{path}", headers=owner_a),
            404,
            "LICENSE_NOT_FOUND",
        )
    assert_problem(
        client.get(f"/api/v1/licenses/{mine['id']}", headers=member_b), 404, "LICENSE_NOT_FOUND"
    )
    assert_problem(
        client.get(f"/api/v1/licenses/{uuid.uuid4()}", headers=bearer(admin_key)),
        404,
        "LICENSE_NOT_FOUND",
    )


def test_admin_lists_filter_and_paginate(client, admin_key, issue, make_org, owner_db):
    org_a, org_b = make_org("A"), make_org("B")
    a1, a2 = issue(org_a), issue(org_a, tier="free")
    b1 = issue(org_b)
    suspended = issue(org_b)
    client.post(f"/api/v1/licenses/{suspended['id']}/suspend", headers=bearer(admin_key))
    expired = issue(org_b)
    owner_db.execute(
        "UPDATE licenses SET expires_at = now() - interval '1 day' WHERE id = %s", (expired["id"],)
    )
    auth = bearer(admin_key)

    def ids(**params: object) -> list[str]:
        body = client.get("/api/v1/licenses", params=params, headers=auth).json()
        return [item["id"] for item in body["items"]]

    assert ids() == [a1["id"], a2["id"], b1["id"], suspended["id"], expired["id"]]
    assert ids(organization_id=str(org_a)) == [a1["id"], a2["id"]]
    assert ids(product="local_cli", organization_id=str(org_b)) == [
        b1["id"],
        suspended["id"],
        expired["id"],
    ]
    assert ids(product="other") == []
    assert ids(status="suspended") == [suspended["id"]]
    assert ids(status="expired") == [expired["id"]]
    assert ids(status="active") == [a1["id"], a2["id"], b1["id"]]
    assert ids(status="revoked") == []
    by_id = {
        item["id"]: item for item in client.get("/api/v1/licenses", headers=auth).json()["items"]
    }
    assert by_id[expired["id"]]["status"] == "expired"

    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/licenses", params=params, headers=auth).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids()
    bogus = client.get("/api/v1/licenses", params={"status": "bogus"}, headers=auth)
    assert bogus.status_code == 422
    bad_cursor = client.get("/api/v1/licenses", params={"cursor": "!!"}, headers=auth)
    assert bad_cursor.status_code in (400, 422)


def test_patch_changes_and_clears_overrides(client, admin_key, issue, make_org, owner_db):
    created = issue(make_org(), max_activations=9, features={"sso": True})
    path = f"/api/v1/licenses/{created['id']}"
    auth = bearer(admin_key)
    changed = client.patch(
        path,
        json={
            "expires_at": None,
            "max_activations": None,
            "features": {"support": "phone"},
            "metadata": {"crm": 7},
        },
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["expires_at"] is None
    assert body["max_activations"] == 3
    assert body["features"] == {"plugins": True, "max_projects": 50, "support": "phone"}
    assert body["metadata"] == {"crm": 7}
    again = client.patch(path, json={"expires_at": "2098-05-05T00:00:00+02:00"}, headers=auth)
    assert _at(again.json()["expires_at"]) == datetime(2098, 5, 4, 22, tzinfo=UTC)
    assert again.json()["metadata"] == {"crm": 7}
    assert client.patch(path, json={}, headers=auth).json() == again.json()
    actions = owner_db.execute(
        "SELECT data FROM audit_events WHERE action = 'license.update' ORDER BY id"
    ).fetchall()
    assert [row[0]["fields"] for row in actions] == [
        ["expires_at", "max_activations", "features", "metadata"],
        ["expires_at"],
    ]

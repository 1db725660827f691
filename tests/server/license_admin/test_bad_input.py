"""Bad input on every license write route: always a 4xx problem, never a 500."""

from __future__ import annotations

import pytest
from support import bearer

LONG = "x" * 10_000


def _issue_bodies(org: str) -> list[object]:
    ok = {"organization_id": org, "product": "local_cli", "tier": "pro"}
    return [
        {},
        [],
        "text",
        {"product": "local_cli", "tier": "pro"},
        {**ok, "organization_id": "not-a-uuid"},
        {**ok, "organization_id": 5},
        {**ok, "product": LONG},
        {**ok, "tier": LONG},
        {**ok, "product": "Upper Case"},
        {**ok, "product": None},
        {**ok, "duration_days": -1},
        {**ok, "duration_days": 0},
        {**ok, "duration_days": "ten"},
        {**ok, "duration_days": 10**12},
        {**ok, "max_activations": -1},
        {**ok, "max_activations": 2**40},
        {**ok, "max_activations": 1.5},
        {**ok, "expires_at": "tomorrow"},
        {**ok, "expires_at": "2099-01-01T00:00:00"},  # no offset
        {**ok, "features": []},
        {**ok, "features": {"a": None}},
        {**ok, "features": {"a": [1]}},
        {**ok, "features": {"a": {"b": 1}}},
        {**ok, "features": {"a": LONG}},
        {**ok, "features": {LONG: True}},
        {**ok, "features": {"a": 10**30}},
        {**ok, "features": {"a": "nul\u0000"}},
        {**ok, "metadata": "x"},
        {**ok, "metadata": {LONG: 1}},
        {**ok, "metadata": {"a": LONG}},
        {**ok, "status": "active"},
    ]


def test_issue(client, admin_key, catalog, make_org, owner_db):
    org = str(make_org())
    for body in _issue_bodies(org):
        response = client.post("/api/v1/licenses", json=body, headers=bearer(admin_key))
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    for raw in (b"{", b"\xff\xfe", b'{"organization_id": "\\ud800"}'):
        response = client.post(
            "/api/v1/licenses",
            content=raw,
            headers={**bearer(admin_key), "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (raw, response.text)
    assert owner_db.execute("SELECT count(*) FROM licenses").fetchone()[0] == 0


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"expires_at": "soon"},
        {"expires_at": True},
        {"max_activations": -3},
        {"max_activations": "many"},
        {"features": {"a": None}},
        {"features": None},
        {"metadata": None},
        {"metadata": {"k": "v" * 9000}},
        {"metadata": {"k": "\u0000"}},
        {"status": "revoked"},
        {"key_prefix": "LK-AAAAA"},
    ],
)
def test_patch(client, admin_key, issue, make_org, body):
    lic = issue(make_org())
    response = client.patch(f"/api/v1/licenses/{lic['id']}", json=body, headers=bearer(admin_key))
    assert 400 <= response.status_code < 500, response.text
    read = client.get(f"/api/v1/licenses/{lic['id']}", headers=bearer(admin_key)).json()
    assert read == {k: v for k, v in lic.items() if k != "key"}


def test_renew_and_actions(client, admin_key, issue, make_org):
    lic = issue(make_org())["id"]
    for body in (
        {"duration_days": -1},
        {"duration_days": 0},
        {"duration_days": "ten"},
        {"duration_days": 10**9},
        {"expires_at": LONG},
        {"expires_at": "2099-01-01"},
        {"until": "2099-01-01T00:00:00Z"},
        [],
    ):
        response = client.post(
            f"/api/v1/licenses/{lic}/renew", json=body, headers=bearer(admin_key)
        )
        assert 400 <= response.status_code < 500, (body, response.text)
    for path in ("suspend", "reinstate", "revoke"):
        response = client.post(f"/api/v1/licenses/not-a-uuid/{path}", headers=bearer(admin_key))
        assert response.status_code == 404
    response = client.delete(
        f"/api/v1/licenses/{lic}/activations/{LONG}", headers=bearer(admin_key)
    )
    assert response.status_code == 404

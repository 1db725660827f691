"""Admin API keys: no scope escalation, and their errors are in the OpenAPI document."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from support import bearer, make_api_key

from server.settings import Settings

API = "/api/v1/api-keys"


@pytest.mark.parametrize(
    "scopes",
    [["*"], ["api-keys:write", "keys:write"], ["licenses:write"]],
)
def test_a_key_cannot_grant_scopes_it_does_not_hold(
    client: TestClient, settings: Settings, scopes: list[str]
) -> None:
    limited = make_api_key(settings, ["api-keys:write", "licenses:read"])
    response = client.post(
        API, json={"name": "escalated", "scopes": scopes}, headers=bearer(limited)
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "SCOPE_ESCALATION"
    listed = client.get(API, headers=bearer(limited)).json()["items"]
    assert [k["name"] for k in listed if k["name"] == "escalated"] == []


def test_the_default_scope_is_everything_so_a_limited_key_must_name_its_scopes(
    client: TestClient, settings: Settings
) -> None:
    limited = make_api_key(settings, ["api-keys:write"])
    response = client.post(API, json={"name": "default"}, headers=bearer(limited))
    assert response.status_code == 403
    assert response.json()["code"] == "SCOPE_ESCALATION"


def test_a_key_may_grant_a_subset_of_its_scopes(client: TestClient, settings: Settings) -> None:
    limited = make_api_key(settings, ["api-keys:write", "licenses:read"])
    for scopes in (["licenses:read"], ["api-keys:write", "licenses:read"]):
        response = client.post(API, json={"name": "ok", "scopes": scopes}, headers=bearer(limited))
        assert response.status_code == 201, response.text
        assert response.json()["scopes"] == sorted(scopes)


def test_an_all_scopes_key_may_grant_anything(client: TestClient, admin_key: str) -> None:
    for scopes in (["*"], ["keys:write", "audit:read"]):
        response = client.post(
            API, json={"name": "ok", "scopes": scopes}, headers=bearer(admin_key)
        )
        assert response.status_code == 201, response.text


def test_api_key_and_signing_key_routes_document_their_errors(client: TestClient) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    expected = {
        ("/api/v1/api-keys", "post"): {"401", "403", "422"},
        ("/api/v1/api-keys", "get"): {"401", "403"},
        ("/api/v1/api-keys/{key_id}", "delete"): {"401", "403", "404"},
        ("/api/v1/keys", "get"): {"401", "403"},
        ("/api/v1/keys/rotate", "post"): {"401", "403", "422"},
    }
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, method, sorted(responses))
        for status in statuses:
            assert "application/problem+json" in responses[status]["content"], (path, status)


def test_listing_shows_when_a_key_was_last_used(
    client: TestClient, admin_key: str, database
) -> None:
    import psycopg

    unused = client.post(
        "/api/v1/api-keys",
        json={"name": "billing", "scopes": ["licenses:read"]},
        headers=bearer(admin_key),
    ).json()
    assert unused["last_used_at"] is None
    assert client.get("/api/v1/licenses", headers=bearer(unused["key"])).status_code == 200
    with psycopg.connect(database.owner_url) as conn:
        first = conn.execute(
            "SELECT last_used_at FROM api_keys WHERE id = %s", (unused["id"],)
        ).fetchone()[0]
    assert first is not None
    # used again within the minute: the read does not rewrite the row
    assert client.get("/api/v1/licenses", headers=bearer(unused["key"])).status_code == 200
    listed = client.get("/api/v1/api-keys", headers=bearer(admin_key)).json()["items"]
    shown = next(item for item in listed if item["id"] == unused["id"])
    assert shown["last_used_at"] is not None
    with psycopg.connect(database.owner_url) as conn:
        again = conn.execute(
            "SELECT last_used_at FROM api_keys WHERE id = %s", (unused["id"],)
        ).fetchone()[0]
    assert again == first


@pytest.mark.parametrize(
    "target_scopes",
    [["*"], ["api-keys:write", "keys:write"], ["licenses:write"], ["licenses:read", "audit:read"]],
)
def test_a_key_cannot_revoke_a_key_with_scopes_it_does_not_hold(
    client: TestClient, settings: Settings, admin_key: str, target_scopes: list[str]
) -> None:
    limited = make_api_key(settings, ["api-keys:write", "licenses:read"])
    made = client.post(
        API, json={"name": "stronger", "scopes": target_scopes}, headers=bearer(admin_key)
    )
    assert made.status_code == 201, made.text
    response = client.delete(f"{API}/{made.json()['id']}", headers=bearer(limited))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "SCOPE_ESCALATION"
    # Still alive: it authenticates.
    assert client.get(API, headers=bearer(made.json()["key"])).status_code in (200, 403)
    listed = client.get(API, headers=bearer(admin_key)).json()["items"]
    assert next(k for k in listed if k["id"] == made.json()["id"])["revoked_at"] is None


def test_a_key_may_revoke_keys_within_its_scopes(
    client: TestClient, settings: Settings, admin_key: str
) -> None:
    limited = make_api_key(settings, ["api-keys:write", "licenses:read"])
    for scopes in (["licenses:read"], ["api-keys:write", "licenses:read"]):
        made = client.post(
            API, json={"name": "weaker", "scopes": scopes}, headers=bearer(admin_key)
        )
        response = client.delete(f"{API}/{made.json()['id']}", headers=bearer(limited))
        assert response.status_code == 204, response.text
        assert client.get(API, headers=bearer(made.json()["key"])).status_code == 401
    # An all-scopes key revokes anything, another all-scopes key included.
    other = client.post(API, json={"name": "root2", "scopes": ["*"]}, headers=bearer(admin_key))
    assert (
        client.delete(f"{API}/{other.json()['id']}", headers=bearer(admin_key)).status_code == 204
    )

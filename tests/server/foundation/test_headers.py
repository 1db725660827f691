"""Every response says ``X-Content-Type-Options: nosniff``; every API response, above all the
ones that carry a license key, an API key, a refresh token or a signed token, says
``Cache-Control: no-store``; the public JWKS stays cacheable."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from support import bearer

API = "/api/v1"


pytestmark = pytest.mark.usefixtures("cheap_argon2")


def _nosniff(response: Any) -> None:
    assert response.headers.get("x-content-type-options") == "nosniff", (
        response.request.method,
        response.request.url,
        dict(response.headers),
    )


def _no_store(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers.get("cache-control") == "no-store", (
        response.request.method,
        response.request.url,
        dict(response.headers),
    )
    _nosniff(response)
    return response.json() if response.content else {}


def test_nosniff_on_every_kind_of_response(client: TestClient, admin_key: str) -> None:
    responses = [
        client.get("/health/live"),
        client.get("/no/such/route"),  # 404 outside the router
        client.delete("/health/live"),  # 405
        client.get(f"{API}/no/such/route"),
        client.get(f"{API}/api-keys"),  # 401
        client.post(
            f"{API}/auth/login", content=b"{", headers={"content-type": "application/json"}
        ),
        client.post(f"{API}/api-keys", json={"name": 1}, headers=bearer(admin_key)),  # 422
        client.get("/.well-known/jwks.json"),
        client.get("/schema/openapi.json"),
    ]
    for response in responses:
        _nosniff(response)


def test_api_errors_are_not_stored_either(client: TestClient) -> None:
    _no_store(client.get(f"{API}/api-keys"), 401)
    _no_store(client.get(f"{API}/no/such/route"), 404)


def test_the_public_jwks_stays_cacheable(client: TestClient) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.headers["cache-control"].startswith("public, max-age=")
    _nosniff(response)


def test_every_secret_bearing_response_is_no_store(client: TestClient, admin_key: str) -> None:
    admin = bearer(admin_key)
    # An API key, shown once.
    created_key = _no_store(client.post(f"{API}/api-keys", json={"name": "ci"}, headers=admin), 201)
    assert created_key["key"]

    # A license key, shown once, and its idempotent replay.
    _no_store(
        client.post(f"{API}/products", json={"code": "cli", "name": "CLI"}, headers=admin), 201
    )
    tier = {"code": "pro", "name": "Pro", "max_activations": 2}
    _no_store(client.post(f"{API}/products/cli/tiers", json=tier, headers=admin), 201)
    org = _no_store(client.post(f"{API}/organizations", json={"name": "Acme"}, headers=admin), 201)
    issue = {"organization_id": org["id"], "product": "cli", "tier": "pro"}
    once = {**admin, "Idempotency-Key": "order-42"}
    lic = _no_store(client.post(f"{API}/licenses", json=issue, headers=once), 201)
    replay = _no_store(client.post(f"{API}/licenses", json=issue, headers=once), 201)
    assert replay["key"] == lic["key"]

    # A signed license token.
    assert _no_store(client.get(f"{API}/licenses/{lic['id']}/token", headers=admin), 200)

    # What products call: each answer carries a signed token.
    machine = {"license_key": lic["key"], "product": "cli", "fingerprint": "machine-1"}
    assert _no_store(client.post(f"{API}/licenses/activate", json=machine), 201)["token"]
    assert _no_store(client.post(f"{API}/licenses/activate", json=machine), 200)["token"]
    assert _no_store(client.post(f"{API}/licenses/check-in", json=machine), 200)["token"]
    validate = {"license_key": lic["key"], "product": "cli", "nonce": "n-1"}
    assert _no_store(client.post(f"{API}/licenses/validate", json=validate), 200)["token"]
    features = client.get(
        f"{API}/licenses/features", params={"product": "cli", "license_key": lic["key"]}
    )
    _no_store(features, 200)
    _no_store(client.post(f"{API}/licenses/deactivate", json=machine), 204)

    # Access and refresh tokens.
    person = {
        "email": "owner@example.com",
        "password": "correct horse battery",
        "full_name": "Owner",
        "organization_name": "Owner's",
    }
    signed = _no_store(client.post(f"{API}/auth/signup", json=person), 201)
    assert signed["refresh_token"]
    login = {"email": person["email"], "password": person["password"]}
    pair = _no_store(client.post(f"{API}/auth/login", json=login), 200)
    refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert _no_store(refreshed, 200)["access_token"]
    _no_store(client.get(f"{API}/auth/me", headers=bearer(refreshed.json()["access_token"])), 200)

"""Products and tiers: CRUD, conflicts, scopes, audit, and bad input (never a 500)."""

from __future__ import annotations

import psycopg
import pytest
from support import assert_problem, bearer, make_api_key

LONG = "x" * 10_000
TIER = {
    "code": "pro",
    "name": "Pro",
    "features": {"sso": True, "max_projects": 50, "ratio": 0.5, "support": "email"},
    "max_activations": 3,
    "duration_days": 365,
    "offline_lease_days": 14,
}


@pytest.fixture
def auth(admin_key):
    return bearer(admin_key)


@pytest.fixture
def product(client, auth):
    response = client.post(
        "/api/v1/products", json={"code": "local_cli", "name": "Local CLI"}, headers=auth
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_product_lifecycle(client, auth, product, database):
    assert product["code"] == "local_cli"
    assert product["name"] == "Local CLI"
    assert_problem(
        client.post("/api/v1/products", json={"code": "local_cli", "name": "x"}, headers=auth),
        409,
        "PRODUCT_EXISTS",
    )
    assert client.get("/api/v1/products/local_cli", headers=auth).json() == product
    client.post("/api/v1/products", json={"code": "cloud-ide", "name": "IDE"}, headers=auth)
    listed = client.get("/api/v1/products", headers=auth).json()
    assert [p["code"] for p in listed["items"]] == ["local_cli", "cloud-ide"]
    first = client.get("/api/v1/products", params={"limit": 1}, headers=auth).json()
    assert [p["code"] for p in first["items"]] == ["local_cli"]
    second = client.get(
        "/api/v1/products", params={"limit": 1, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    assert [p["code"] for p in second["items"]] == ["cloud-ide"]
    assert second["next_cursor"] is None

    renamed = client.patch("/api/v1/products/local_cli", json={"name": "CLI"}, headers=auth)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "CLI"
    assert renamed.json()["code"] == "local_cli"
    assert client.patch("/api/v1/products/local_cli", json={}, headers=auth).json()["name"] == "CLI"
    assert_problem(client.get("/api/v1/products/nope", headers=auth), 404, "PRODUCT_NOT_FOUND")
    assert_problem(
        client.patch("/api/v1/products/nope", json={"name": "x"}, headers=auth),
        404,
        "PRODUCT_NOT_FOUND",
    )
    with psycopg.connect(database.owner_url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM audit_events WHERE action LIKE 'product.%' ORDER BY id"
            )
        ]
    assert actions == ["product.create", "product.create", "product.update"]


def test_tier_lifecycle(client, auth, product):
    created = client.post("/api/v1/products/local_cli/tiers", json=TIER, headers=auth)
    assert created.status_code == 201, created.text
    tier = created.json()
    assert tier["product"] == "local_cli"
    assert tier["features"] == TIER["features"]
    assert (tier["lease_grace_days"], tier["max_deactivations_per_day"]) == (7, 3)
    assert_problem(
        client.post("/api/v1/products/local_cli/tiers", json=TIER, headers=auth),
        409,
        "TIER_EXISTS",
    )
    minimal = client.post(
        "/api/v1/products/local_cli/tiers",
        json={"code": "free", "name": "Free", "max_activations": 0},
        headers=auth,
    ).json()
    assert minimal["features"] == {}
    assert minimal["duration_days"] is None
    assert minimal["offline_lease_days"] == 7
    listed = client.get("/api/v1/products/local_cli/tiers", headers=auth).json()
    assert [t["code"] for t in listed["items"]] == ["pro", "free"]
    assert client.get("/api/v1/products/local_cli/tiers/pro", headers=auth).json() == tier

    changed = client.patch(
        "/api/v1/products/local_cli/tiers/pro",
        json={"duration_days": None, "max_activations": 5, "lease_grace_days": 0},
        headers=auth,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["duration_days"], body["max_activations"], body["lease_grace_days"]) == (
        None,
        5,
        0,
    )
    assert body["features"] == TIER["features"]
    assert body["offline_lease_days"] == 14

    assert_problem(
        client.post("/api/v1/products/nope/tiers", json=TIER, headers=auth),
        404,
        "PRODUCT_NOT_FOUND",
    )
    assert_problem(
        client.get("/api/v1/products/nope/tiers", headers=auth), 404, "PRODUCT_NOT_FOUND"
    )
    assert_problem(
        client.get("/api/v1/products/local_cli/tiers/gold", headers=auth), 404, "TIER_NOT_FOUND"
    )
    assert_problem(
        client.patch("/api/v1/products/local_cli/tiers/gold", json={}, headers=auth),
        404,
        "TIER_NOT_FOUND",
    )


def test_the_same_tier_code_on_two_products(client, auth, product):
    client.post("/api/v1/products", json={"code": "ide", "name": "IDE"}, headers=auth)
    for code in ("local_cli", "ide"):
        response = client.post(f"/api/v1/products/{code}/tiers", json=TIER, headers=auth)
        assert response.status_code == 201


def test_scopes(client, settings, product):
    body = {"code": "other", "name": "Other"}
    assert_problem(client.get("/api/v1/products"), 401)
    assert_problem(client.post("/api/v1/products", json=body), 401)
    assert_problem(client.get("/api/v1/products", headers=bearer("lic_admin_nope")), 401)
    reader = bearer(make_api_key(settings, ["products:read"]))
    assert client.get("/api/v1/products", headers=reader).status_code == 200
    assert client.get("/api/v1/products/local_cli/tiers", headers=reader).status_code == 200
    assert_problem(client.post("/api/v1/products", json=body, headers=reader), 403, "MISSING_SCOPE")
    assert_problem(
        client.patch("/api/v1/products/local_cli", json={"name": "x"}, headers=reader), 403
    )
    assert_problem(client.post("/api/v1/products/local_cli/tiers", json=TIER, headers=reader), 403)
    assert_problem(
        client.patch("/api/v1/products/local_cli/tiers/pro", json={}, headers=reader), 403
    )
    licenses_only = bearer(make_api_key(settings, ["licenses:write"]))
    assert_problem(client.get("/api/v1/products", headers=licenses_only), 403, "MISSING_SCOPE")
    writer = bearer(make_api_key(settings, ["products:write"]))
    assert client.post("/api/v1/products", json=body, headers=writer).status_code == 201


def test_users_cannot_manage_the_catalog(client, settings, product):
    import uuid

    from keys.crypto import parse_kek
    from server.auth.principal import access_token_secret, issue_access_token

    token = issue_access_token(
        access_token_secret(parse_kek(settings.key_encryption_key)),
        user_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        role="owner",
        ttl=600,
        issuer=settings.issuer,
    )
    assert_problem(client.get("/api/v1/products", headers=bearer(token)), 403, "INSUFFICIENT_ROLE")
    assert_problem(
        client.post("/api/v1/products", json={"code": "a", "name": "b"}, headers=bearer(token)),
        403,
    )


PRODUCT_BODIES = [
    {},
    [],
    {"code": "ok"},
    {"name": "ok"},
    {"code": "Upper", "name": "x"},
    {"code": "has space", "name": "x"},
    {"code": "1starts-with-digit", "name": "x"},
    {"code": "", "name": "x"},
    {"code": LONG, "name": "x"},
    {"code": "ok", "name": LONG},
    {"code": "ok", "name": ""},
    {"code": "ok", "name": "nul\u0000"},
    {"code": 5, "name": "x"},
    {"code": "ok", "name": ["x"]},
    {"code": "ok", "name": "x", "extra": 1},
]
TIER_BODIES = [
    {},
    {**TIER, "code": "Bad Code"},
    {**TIER, "code": LONG},
    {**TIER, "name": LONG},
    {**TIER, "max_activations": -1},
    {**TIER, "max_activations": 2**40},
    {**TIER, "max_activations": "three"},
    {**TIER, "max_activations": None},
    {**TIER, "duration_days": 0},
    {**TIER, "duration_days": -5},
    {**TIER, "duration_days": 10**10},
    {**TIER, "offline_lease_days": 0},
    {**TIER, "offline_lease_days": None},
    {**TIER, "lease_grace_days": -1},
    {**TIER, "max_deactivations_per_day": -1},
    {**TIER, "features": []},
    {**TIER, "features": "sso"},
    {**TIER, "features": {"a": None}},
    {**TIER, "features": {"a": [1, 2]}},
    {**TIER, "features": {"a": {"b": True}}},
    {**TIER, "features": {"a": 10**20}},
    {**TIER, "features": {"a": LONG}},
    {**TIER, "features": {LONG: 1}},
    {**TIER, "features": {"": 1}},
    {**TIER, "features": {"bad name": 1}},
    {**TIER, "features": {"a": "\u0000"}},
    {**TIER, "features": {f"f{i}": i for i in range(201)}},
    {**TIER, "unknown": True},
]


def _assert_4xx(response, body):
    assert 400 <= response.status_code < 500, (body, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_bad_input_never_500(client, auth, product, database):
    client.post("/api/v1/products/local_cli/tiers", json=TIER, headers=auth)
    for body in PRODUCT_BODIES:
        _assert_4xx(client.post("/api/v1/products", json=body, headers=auth), body)
    for body in [{"name": LONG}, {"name": None}, {"name": ""}, {"code": "new"}, []]:
        _assert_4xx(client.patch("/api/v1/products/local_cli", json=body, headers=auth), body)
    for body in TIER_BODIES:
        _assert_4xx(client.post("/api/v1/products/local_cli/tiers", json=body, headers=auth), body)
    patches = [
        {k: v for k, v in body.items() if k not in ("code",)}
        for body in TIER_BODIES
        if body and any(body.get(k) != TIER.get(k) for k in body if k != "code")
    ]
    for body in [*patches, {"code": "renamed"}, {"name": None}, {"features": None}]:
        _assert_4xx(
            client.patch("/api/v1/products/local_cli/tiers/pro", json=body, headers=auth), body
        )
    for raw in (b"{", b"\xff", b'{"code": "\\ud800", "name": "x"}'):
        response = client.post(
            "/api/v1/products",
            content=raw,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500, (raw, response.text)
    _assert_4xx(client.get(f"/api/v1/products/{LONG}", headers=auth), LONG)
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT count(*) FROM products").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM tiers").fetchone()[0] == 1
        row = conn.execute("SELECT max_activations, duration_days FROM tiers").fetchone()
    assert row == (3, 365)

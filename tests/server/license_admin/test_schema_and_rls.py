"""The OpenAPI document covers these routes; row-level security backs up the code's filters."""

from __future__ import annotations

import uuid

import pytest
from support import run

from server.db.session import create_engine, create_sessionmaker, set_tenant
from server.errors import NotFound
from server.license_admin import service


def test_openapi_documents_the_routes(client):
    document = client.get("/schema/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/api/v1/products", "post"),
        ("/api/v1/products/{code}/tiers", "post"),
        ("/api/v1/products/{code}/tiers/{tier_code}", "patch"),
        ("/api/v1/licenses", "post"),
        ("/api/v1/licenses", "get"),
        ("/api/v1/licenses/{license_id}", "patch"),
        ("/api/v1/licenses/{license_id}/renew", "post"),
        ("/api/v1/licenses/{license_id}/token", "get"),
        ("/api/v1/licenses/{license_id}/activations/{activation_id}", "delete"),
    ]:
        operation = paths[path][method]
        assert operation["security"] == [{"bearer": []}], path
        assert any(status.startswith("4") for status in operation["responses"]), path
    issue = paths["/api/v1/licenses"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in issue["parameters"])
    assert "LicenseCreated" in document["components"]["schemas"]


def test_rls_hides_other_tenants_even_without_the_code_filter(settings, issue, make_org):
    org_a, org_b = make_org("A"), make_org("B")
    theirs = issue(org_b)

    async def as_tenant_a() -> None:
        engine = create_engine(settings)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                await set_tenant(session, org_a)
                # principal=None skips the code's organization filter: only RLS is left.
                page = await service.list_licenses(session, None)
                assert page.items == []
                with pytest.raises(NotFound):
                    await service.get_license(session, None, uuid.UUID(theirs["id"]))
        finally:
            await engine.dispose()

    run(as_tenant_a())

"""The contract kept at one level (server/contract.py, server/validation.strict_body): Allow
on OPTIONS and 405, additionalProperties, refusals documented, links on creates, strict
request types."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient
from support import assert_problem, bearer

NO_ID = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def document(client: TestClient) -> dict:
    return client.get("/schema/openapi.json").json()


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/api/v1/products", {"GET", "POST", "OPTIONS"}),
        ("/api/v1/licenses/00000000-0000-0000-0000-000000000000", {"GET", "PATCH", "OPTIONS"}),
        (
            "/api/v1/users/00000000-0000-0000-0000-000000000000",
            {"GET", "PATCH", "DELETE", "OPTIONS"},
        ),
        ("/api/v1/licenses/validate", {"POST", "OPTIONS"}),
    ],
)
def test_options_and_405_list_every_method_of_the_path(
    client: TestClient, path: str, methods: set[str]
) -> None:
    options = client.options(path)
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["allow"].split(",")} == methods
    refused = client.put(path, json={})
    assert_problem(refused, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in refused.headers["allow"].split(",")} == methods


def test_request_schemas_refuse_unknown_fields(document: dict) -> None:
    schemas = document["components"]["schemas"]
    for name in ("ValidateRequest", "ActivateRequest", "LicenseCreate", "UserUpdate", "TierCreate"):
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["LicenseRead"]


def test_every_operation_documents_its_refusals(document: dict) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if operation.get("parameters") or operation.get("requestBody"):
                assert "422" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
    rotate = document["paths"]["/api/v1/keys/rotate"]["post"]
    assert rotate["requestBody"]["required"] is False


def test_creates_link_to_the_operations_on_what_they_created(document: dict) -> None:
    issue = document["paths"]["/api/v1/licenses"]["post"]["responses"]["201"]
    links = issue["links"]
    targets = {link["operationId"]: link["parameters"] for link in links.values()}
    by_id = {
        operation["operationId"]: (path, method)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    linked = {by_id[operation_id] for operation_id in targets}
    assert ("/api/v1/licenses/{license_id}", "get") in linked
    assert ("/api/v1/licenses/{license_id}", "patch") in linked
    assert ("/api/v1/licenses/{license_id}/suspend", "post") in linked
    assert ("/api/v1/licenses/{license_id}/revoke", "post") in linked
    assert all(p == {"license_id": "$response.body#/id"} for p in targets.values())
    user = document["paths"]["/api/v1/users"]["post"]["responses"]["201"]["links"]
    assert {by_id[link["operationId"]][1] for link in user.values()} == {"get", "patch", "delete"}
    tier = document["paths"]["/api/v1/products/{code}/tiers"]["post"]["responses"]["201"]["links"]
    for link in tier.values():
        assert link["parameters"] == {
            "code": "$request.path.code",
            "tier_code": "$response.body#/code",
        }


def test_bodies_are_typed_strictly(client: TestClient, admin_key: str) -> None:
    headers = bearer(admin_key)
    assert client.post(
        "/api/v1/products", json={"code": "p", "name": "P"}, headers=headers
    ).is_success
    tier = {"code": "t", "name": "T", "max_activations": "3"}
    refused = client.post("/api/v1/products/p/tiers", json=tier, headers=headers)
    body = assert_problem(refused, 422, "VALIDATION_ERROR")
    assert body["errors"][0]["key"] == "max_activations", body
    wrong = client.post("/api/v1/products", json={"code": 1, "name": "P"}, headers=headers)
    assert assert_problem(wrong, 422)["errors"][0]["key"] == "code"
    # JSON has one number type: 3.0 is the integer 3, as JSON Schema says.
    tier["max_activations"] = 3.0
    created = client.post("/api/v1/products/p/tiers", json=tier, headers=headers)
    assert created.status_code == 201 and created.json()["max_activations"] == 3
    fraction = client.post(
        "/api/v1/products/p/tiers",
        json={**tier, "code": "u", "max_activations": 3.5},
        headers=headers,
    )
    assert assert_problem(fraction, 422)["errors"][0]["key"] == "max_activations"

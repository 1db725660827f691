"""NUL and control characters in licensing requests are refused at the edge (422), never 500."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

BASE = {"license_key": "LK-ABCDE", "product": "local_cli", "fingerprint": "machine-1"}


@pytest.mark.parametrize("route", ["validate", "activate", "check-in", "deactivate"])
@pytest.mark.parametrize("field", ["license_key", "product", "fingerprint"])
def test_nul_in_body_is_422(client: TestClient, route: str, field: str) -> None:
    body = {**BASE, field: BASE[field] + "\x00"}
    response = client.post(f"/api/v1/licenses/{route}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize("field", ["name", "platform"])
def test_nul_in_machine_details_is_422(client: TestClient, field: str) -> None:
    response = client.post("/api/v1/licenses/activate", json={**BASE, field: "a\x00b"})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "query", ["product=a%00b&tier=pro", "product=local_cli&tier=a%00", "product=p&license_key=%00"]
)
def test_nul_in_features_query_is_4xx(client: TestClient, query: str) -> None:
    response = client.get(f"/api/v1/licenses/features?{query}")
    assert 400 <= response.status_code < 500, response.text

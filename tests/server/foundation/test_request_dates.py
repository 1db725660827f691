"""Every datetime a request carries is aware and within [1970-01-01, 9000-01-01) UTC; outside
it is a 422 VALIDATION_ERROR naming the field, decided when the body is decoded (year 1 once
reached PostgreSQL as -infinity and failed later with a 500)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, get_args

import factories
import msgspec
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from support import bearer

from keys.crypto import new_kek_text
from server.app import create_app
from server.errors import InvalidInput
from server.license_admin.schemas import RenewRequest
from server.settings import Settings
from server.signing_keys.schemas import RotateRequest
from server.validation import check_datetime

DatedRequest = object

SOME_ID = "00000000-0000-4000-8000-000000000001"

# Every request field documented as a date-time: (method, OpenAPI path, field) -> the rest of
# a body that is otherwise valid, so that the date is what gets refused.
DATE_FIELDS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("post", "/api/v1/licenses", "expires_at"): {
        "organization_id": SOME_ID,
        "product": "cli",
        "tier": "pro",
    },
    ("patch", "/api/v1/licenses/{license_id}", "expires_at"): {},
    ("post", "/api/v1/licenses/{license_id}/renew", "expires_at"): {},
    ("post", "/api/v1/licenses/{license_id}/change-tier", "expires_at"): {"tier": "pro"},
    ("post", "/api/v1/keys/rotate", "activate_at"): {},
}

OUT_OF_RANGE = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+05:00",  # before datetime.min once in UTC
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:30:00+01:00",  # 1969 in UTC
    "9000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-05:00",  # after datetime.max once in UTC
]


@pytest.fixture(scope="module")
def offline_app() -> Litestar:
    """The application, never started: its routes and OpenAPI document need no database."""
    return create_app(
        Settings(
            database_url="postgresql+asyncpg://nobody@/nowhere", key_encryption_key=new_kek_text()
        )
    )


def _date_fields(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    schemas = document["components"]["schemas"]
    found = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not body:
                continue
            schema = body["content"]["application/json"]["schema"]
            refs = [schema, *schema.get("oneOf", [])]
            for ref in (r["$ref"] for r in refs if "$ref" in r):
                properties = schemas[ref.rsplit("/", 1)[-1]].get("properties", {})
                for name, prop in properties.items():
                    if "date-time" in str(prop):
                        found.add((method, path, name))
    return found


def test_every_documented_request_datetime_is_covered(offline_app: Litestar) -> None:
    assert _date_fields(offline_app.openapi_schema.to_schema()) == set(DATE_FIELDS)


def _has_datetime(info: Any) -> bool:
    if isinstance(info, msgspec.inspect.DateTimeType):
        return True
    inner = getattr(info, "types", None) or [getattr(info, "type", None)]
    return any(_has_datetime(t) for t in inner if isinstance(t, msgspec.inspect.Type))


def test_every_request_schema_with_a_datetime_checks_its_range(offline_app: Litestar) -> None:
    checked = []
    for route in offline_app.routes:
        for handler in getattr(route, "route_handlers", []):
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is None:
                continue
            candidates = (data.annotation, *get_args(data.annotation))  # X or X | None
            for cls in {a for a in candidates if isinstance(a, type)}:
                if issubclass(cls, msgspec.Struct) and any(
                    _has_datetime(f.type) for f in msgspec.inspect.type_info(cls).fields
                ):
                    assert issubclass(cls, DatedRequest), cls
                    checked.append(cls)
    assert len(checked) >= 4


@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_out_of_range_request_datetimes_are_422_naming_the_field(
    client: TestClient, admin_key: str, value: str
) -> None:
    for (method, path, field), rest in DATE_FIELDS.items():
        url = path.replace("{license_id}", str(uuid.uuid4()))
        response = client.request(
            method.upper(), url, json={**rest, field: value}, headers=bearer(admin_key)
        )
        assert response.status_code == 422, (path, value, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        body = response.json()
        assert body["code"] == "VALIDATION_ERROR", (path, body)
        assert body["detail"].startswith(f"{field}:"), body
        assert body["errors"] == [
            {"key": field, "message": body["errors"][0]["message"], "source": "body"}
        ]


@pytest.mark.parametrize(
    "value",
    [
        "1970-01-01T00:00:00Z",
        "1970-01-01T00:00:00-01:00",
        "8999-12-31T23:59:59Z",
        "2031-05-06T07:08:09+09:30",
    ],
)
def test_datetimes_in_range_are_decoded(value: str) -> None:
    assert msgspec.convert({"expires_at": value}, RenewRequest).expires_at is not None
    assert msgspec.convert({"activate_at": value}, RotateRequest).activate_at is not None


def test_the_service_check_refuses_the_same_range() -> None:

    for bad in (
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, tzinfo=UTC),
        datetime(2030, 1, 1),
    ):
        with pytest.raises(InvalidInput) as caught:
            check_datetime(bad, "activate_at")
        assert caught.value.code == "DATE_OUT_OF_RANGE"
        assert caught.value.detail.startswith("activate_at:")
    assert check_datetime(datetime(1970, 1, 1, tzinfo=UTC), "x").year == 1970


def test_a_license_and_a_key_schedule_keep_working_after_refused_dates(
    client: TestClient, admin_key: str, owner_db: psycopg.Connection
) -> None:
    """The reported case: year 1 was stored as -infinity, and the license failed with a 500."""
    admin = bearer(admin_key)

    def ok(response: Any, status: int = 200) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return response.json()

    factories.product(owner_db, "cli", {"pro": factories.Tier(max_activations=2)})
    org = factories.organization(owner_db)
    lic = factories.license(factories.AdminApi(client, admin), org, "cli").id

    for value in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"):
        refused = client.patch(f"/api/v1/licenses/{lic}", json={"expires_at": value}, headers=admin)
        assert refused.status_code == 422, refused.text
        rotate = client.post("/api/v1/keys/rotate", json={"activate_at": value}, headers=admin)
        assert rotate.status_code == 422, rotate.text
    assert ok(client.get(f"/api/v1/licenses/{lic}", headers=admin))["expires_at"] is None
    ok(client.get(f"/api/v1/licenses/{lic}/token", headers=admin))
    assert len(ok(client.get("/api/v1/keys", headers=admin))) == 1  # nothing was scheduled

    # The earliest accepted date is a license that has simply expired.
    earliest = {"expires_at": "1970-01-01T00:00:00Z"}
    ok(client.patch(f"/api/v1/licenses/{lic}", json=earliest, headers=admin))
    token = client.get(f"/api/v1/licenses/{lic}/token", headers=admin)
    assert token.status_code == 403 and token.json()["code"] == "LICENSE_EXPIRED", token.text

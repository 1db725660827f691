"""Pagination cursors from a client are checked: anything malformed is 422 INVALID_CURSOR."""

from __future__ import annotations

import base64

import pytest
from litestar.testing import TestClient
from support import bearer

from server.errors import InvalidInput
from server.pagination import decode_cursor

UUID = "00000000-0000-0000-0000-000000000001"


def cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


BAD_UUID_CURSORS = [
    cursor(f"0001-01-01T00:00:00+14:00|{UUID}"),  # before year 1 in UTC
    cursor(f"9999-12-31T23:59:59-14:00|{UUID}"),  # after year 9999 in UTC
    cursor(f"2026-01-01T00:00:00|{UUID}"),  # naive
    cursor("2026-01-01T00:00:00+00:00|not-a-uuid"),
    cursor("not a time|x"),
    "%%%",
]
BAD_INT_CURSORS = [
    cursor("2026-01-01T00:00:00+00:00|99999999999999999999999"),
    cursor(f"2026-01-01T00:00:00+00:00|{2**63}"),
    cursor("0001-01-01T00:00:00+14:00|1"),
    cursor("2026-01-01T00:00:00|1"),
    cursor("2026-01-01T00:00:00+00:00|x"),
]


@pytest.mark.parametrize("path", ["/api/v1/licenses", "/api/v1/products", "/api/v1/api-keys"])
@pytest.mark.parametrize("value", BAD_UUID_CURSORS)
def test_bad_cursor_on_uuid_lists(client: TestClient, admin_key: str, path: str, value: str):
    response = client.get(path, params={"cursor": value}, headers=bearer(admin_key))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "INVALID_CURSOR"


@pytest.mark.parametrize("value", BAD_INT_CURSORS)
def test_bad_cursor_on_integer_lists(client: TestClient, admin_key: str, value: str):
    response = client.get(
        "/api/v1/audit-events", params={"cursor": value}, headers=bearer(admin_key)
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "INVALID_CURSOR"


def test_good_cursors_still_page(client: TestClient, admin_key: str) -> None:
    for name in ("a", "b", "c"):
        client.post("/api/v1/api-keys", json={"name": name}, headers=bearer(admin_key))
    first = client.get("/api/v1/api-keys", params={"limit": 2}, headers=bearer(admin_key)).json()
    assert first["next_cursor"]
    second = client.get(
        "/api/v1/api-keys",
        params={"limit": 2, "cursor": first["next_cursor"]},
        headers=bearer(admin_key),
    ).json()
    seen = [k["id"] for k in first["items"] + second["items"]]
    assert len(seen) == len(set(seen)) == 4  # the admin key and three more
    events = client.get("/api/v1/audit-events", params={"limit": 1}, headers=bearer(admin_key))
    assert events.status_code == 200
    nxt = events.json()["next_cursor"]
    after = client.get("/api/v1/audit-events", params={"cursor": nxt}, headers=bearer(admin_key))
    assert after.status_code == 200, after.text


def test_decoded_cursor_times_are_utc() -> None:
    stamp, row_id = decode_cursor(cursor(f"2026-01-01T02:00:00+02:00|{UUID}"))
    assert stamp.utcoffset().total_seconds() == 0 and stamp.hour == 0 and row_id == UUID
    with pytest.raises(InvalidInput):
        decode_cursor(cursor("2026-01-01T00:00:00|1"))

"""Request datetimes carry an offset and stay below year 9000; renewals cannot overflow; the
token route counts whole seconds, like the tokens themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import assert_problem, bearer

from server.license_admin import service as license_service


def test_renew_past_the_last_representable_day_is_a_422(
    client, admin_key, issue, make_org, owner_db
):
    lic = issue(make_org())["id"]
    auth = bearer(admin_key)
    # A far expiry already stored (as older versions allowed), then renewed by a day.
    owner_db.execute(
        "UPDATE licenses SET expires_at = '9999-12-31T00:00:00Z' WHERE id = %s", (lic,)
    )
    response = client.post(f"/api/v1/licenses/{lic}/renew", json={"duration_days": 1}, headers=auth)
    assert_problem(response, 422, "DATE_OUT_OF_RANGE")
    response = client.post(
        f"/api/v1/licenses/{lic}/renew", json={"duration_days": 36_500}, headers=auth
    )
    assert_problem(response, 422, "DATE_OUT_OF_RANGE")


@pytest.mark.parametrize(
    "route", ["issue", "renew", "update"], ids=["POST /licenses", "renew", "PATCH"]
)
@pytest.mark.parametrize(
    "value", ["9999-12-31T00:00:00Z", "9000-01-01T00:00:00+00:00", "2030-01-01T00:00:00"]
)
def test_request_datetimes_are_bounded_and_aware(
    client, admin_key, issue, make_org, catalog, route, value
):
    auth = bearer(admin_key)
    org = make_org()
    if route == "issue":
        response = client.post(
            "/api/v1/licenses",
            json={
                "organization_id": str(org),
                "product": "local_cli",
                "tier": "pro",
                "expires_at": value,
            },
            headers=auth,
        )
    else:
        lic = issue(org)["id"]
        if route == "renew":
            response = client.post(
                f"/api/v1/licenses/{lic}/renew", json={"expires_at": value}, headers=auth
            )
        else:
            response = client.patch(
                f"/api/v1/licenses/{lic}", json={"expires_at": value}, headers=auth
            )
    assert response.status_code == 422, response.text


def test_renew_to_a_late_but_sane_date_works(client, admin_key, issue, make_org):
    lic = issue(make_org())["id"]
    response = client.post(
        f"/api/v1/licenses/{lic}/renew",
        json={"expires_at": "8999-06-01T00:00:00Z"},
        headers=bearer(admin_key),
    )
    assert response.status_code == 200, response.text
    again = client.post(
        f"/api/v1/licenses/{lic}/renew", json={"duration_days": 1}, headers=bearer(admin_key)
    )
    assert again.status_code == 200, again.text


class _Frozen(datetime):
    at: datetime

    @classmethod
    def now(cls, tz=None):  # type: ignore[override]
        return cls.at


def test_token_in_the_last_second_before_expiry_is_license_expired(
    client, admin_key, issue, make_org, owner_db, monkeypatch
):
    lic = issue(make_org())["id"]
    second = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    owner_db.execute(
        "UPDATE licenses SET expires_at = %s WHERE id = %s",
        (second + timedelta(microseconds=500_000), lic),
    )
    _Frozen.at = second + timedelta(microseconds=300_000)
    monkeypatch.setattr(license_service, "datetime", _Frozen)
    response = client.get(f"/api/v1/licenses/{lic}/token", headers=bearer(admin_key))
    assert_problem(response, 403, "LICENSE_EXPIRED")


def test_token_of_a_license_started_within_this_second(
    client, admin_key, issue, make_org, owner_db, monkeypatch
):
    lic = issue(make_org())["id"]
    second = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    owner_db.execute(
        "UPDATE licenses SET starts_at = %s WHERE id = %s",
        (second + timedelta(microseconds=800_000), lic),
    )
    _Frozen.at = second + timedelta(microseconds=300_000)
    monkeypatch.setattr(license_service, "datetime", _Frozen)
    response = client.get(f"/api/v1/licenses/{lic}/token", headers=bearer(admin_key))
    assert response.status_code == 200, response.text

"""Meters on the license pages: the console shows them and its admins reset them (a CSRF
form, through the same service as the API); the portal shows the organization its own."""

from __future__ import annotations

import uuid

import pytest
from people import PASSWORD, signup
from support import console_sign_in, csrf_field

pytestmark = pytest.mark.usefixtures("cheap_argon2")

METERS = {"automations": {"limit": 100, "period": "month"}, "installs": {"limit": 50}}


def consume(client, lic, meter: str, amount: int) -> None:
    response = client.post(
        "/api/v1/licenses/usage",
        json={"license_key": lic.key, "product": lic.product, "meter": meter, "amount": amount},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 200, response.text


def test_the_console_shows_meters_and_an_admin_resets_one(
    client, settings, make_license, sql
) -> None:
    lic = make_license(tier="metered", meters=METERS)
    consume(client, lic, "automations", 42)
    token = console_sign_in(client, settings, "admin")
    page = client.get(f"/console/licenses/{lic.id}").text
    assert "<h2>Usage</h2>" in page and "automations" in page and "42" in page
    assert "100 a month" in page and "never (no period)" in page
    assert f"/console/licenses/{lic.id}/usage/reset" in page

    path = f"/console/licenses/{lic.id}/usage/reset"
    assert client.post(path, data={"meter": "automations"}).status_code == 403  # no CSRF token
    reset = client.post(path, data={"meter": "automations", "_csrf_token": token})
    assert reset.status_code == 200, reset.text
    assert sql.one("SELECT used FROM license_usage WHERE license_id = %s", lic.id) == 0
    assert (
        sql.one("SELECT actor_type FROM audit_events WHERE action = 'license.usage_reset'")
        == "staff"
    )


def test_a_console_viewer_sees_meters_but_cannot_reset(client, settings, make_license) -> None:
    lic = make_license(tier="metered", meters=METERS)
    consume(client, lic, "automations", 1)
    token = console_sign_in(client, settings, "viewer")
    page = client.get(f"/console/licenses/{lic.id}").text
    assert "<h2>Usage</h2>" in page and "usage/reset" not in page
    refused = client.post(
        f"/console/licenses/{lic.id}/usage/reset",
        data={"meter": "automations", "_csrf_token": token},
    )
    assert refused.status_code == 403


def test_a_license_without_meters_shows_no_usage(client, settings, make_license) -> None:
    lic = make_license()
    console_sign_in(client, settings, "admin")
    assert "<h2>Usage</h2>" not in client.get(f"/console/licenses/{lic.id}").text


def test_the_portal_shows_the_organization_its_meters(client, make_license) -> None:
    owner = signup(client, "Initech")
    lic = make_license(
        tier="metered", meters=METERS, organization_id=uuid.UUID(owner["user"]["organization_id"])
    )
    consume(client, lic, "installs", 7)
    client.cookies.clear()
    token = csrf_field(client.get("/portal/login").text)
    client.post(
        "/portal/login",
        data={"email": owner["user"]["email"], "password": PASSWORD, "_csrf_token": token},
    )
    page = client.get(f"/portal/licenses/{lic.id}").text
    assert "<h2>Usage</h2>" in page and "installs" in page and "7" in page
    assert "Reset" not in page

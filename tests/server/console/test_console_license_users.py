"""The console's license page lists a named-user license's users
(``console/_license_users.html``)."""

from __future__ import annotations

import factories
import pytest
from litestar.testing import TestClient
from support import STAFF_PASSWORD, csrf_field, make_staff

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PRODUCT = "cloud_ide_console"


def test_the_license_page_lists_assigned_users(
    client: TestClient, settings: Settings, owner_db
) -> None:
    made = factories.product(
        owner_db,
        PRODUCT,
        {
            "team": factories.Tier(seat_kind="user", max_users=5, machines_per_user=2),
            "desk": factories.Tier(),
        },
    )
    assert made.tiers
    org = factories.organization(owner_db, "Initech")
    alice = factories.user(owner_db, org, full_name="Alice Example")
    team = factories.license(owner_db, org, PRODUCT, "team")
    desk = factories.license(owner_db, org, PRODUCT, "desk")
    factories.license_user(owner_db, team, alice)
    factories.activation(owner_db, team, user_id=alice)

    make_staff(settings, "viewer@vendor.test", "viewer")
    token = csrf_field(client.get("/console/login").text)
    client.post(
        "/console/login",
        data={"email": "viewer@vendor.test", "password": STAFF_PASSWORD, "_csrf_token": token},
    )
    page = client.get(f"/console/licenses/{team.id}")
    assert page.status_code == 200, page.text
    assert "Named users" in page.text and "1 of 5 users assigned" in page.text
    assert "Alice Example" in page.text and f"{alice}@example.com" in page.text
    machine_page = client.get(f"/console/licenses/{desk.id}")
    assert machine_page.status_code == 200 and "Named users" not in machine_page.text

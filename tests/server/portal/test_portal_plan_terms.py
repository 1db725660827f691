"""The portal's license page says what a customer's plan means after its expiry (perpetual
fallback: "updates until") and whether it is a trial."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from litestar.testing import TestClient
from people import PASSWORD, signup
from support import csrf_field

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def test_fallback_and_trial_terms_on_the_license_page(client: TestClient, make_license) -> None:
    owner = signup(client, "Initech")
    org = uuid.UUID(owner["user"]["organization_id"])
    ends = datetime.now(UTC) + timedelta(days=20)
    fallback = make_license(organization_id=org, expiry_behavior="fallback", expires_at=ends)
    trial = make_license(
        organization_id=org, product="trialware", tier="trial", is_trial=True, duration_days=14
    )
    token = csrf_field(client.get("/portal/login").text)
    signed_in = client.post(
        "/portal/login",
        data={"email": owner["user"]["email"], "password": PASSWORD, "_csrf_token": token},
        follow_redirects=False,
    )
    assert signed_in.status_code == 303
    page = client.get(f"/portal/licenses/{fallback.id}").text
    assert f"releases up to {ends:%Y-%m-%d} keep working" in page and "a trial" not in page
    page = client.get(f"/portal/licenses/{trial.id}").text
    assert "; a trial." in page and "Perpetual fallback" not in page

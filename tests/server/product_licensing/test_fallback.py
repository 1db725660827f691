"""Perpetual fallback through the licensing API: across the expiry instant, an expired license
of a ``fallback`` tier still validates, activates and checks in (``VALID``, ``updates_until``
= the expiry), and its tokens cover the builds released until then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from licentia_verifier import Expired, Verifier
from support import assert_problem

API = "/api/v1/licenses"


def body(lic, fingerprint: str | None = "machine-1"):
    data = {"license_key": lic.key, "product": lic.product}
    if fingerprint is not None:
        data["fingerprint"] = fingerprint
    return data


def verifier(client, settings) -> Verifier:
    jwks = client.get("/.well-known/jwks.json").json()
    return Verifier.from_jwks(jwks, product="local_cli", issuer=settings.issuer)


def _second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def test_fallback_license_across_its_expiry(client, settings, make_license, sql) -> None:
    expiry = _second(datetime.now(UTC) + timedelta(days=30))
    lic = make_license(tier="perpetual", expiry_behavior="fallback", expires_at=expiry)
    check = verifier(client, settings)

    # Before the expiry: valid, and the tokens already say which builds are covered.
    before = client.post(f"{API}/validate", json=body(lic, None)).json()
    assert before["code"] == "VALID" and before["license"]["status"] == "active"
    assert before["license"]["updates_until"] == expiry.isoformat().replace("+00:00", "Z")
    token = check.verify_license(before["token"])
    assert token.updates_until == expiry and token.license_expires_at is None
    activated = client.post(f"{API}/activate", json=body(lic))
    assert activated.status_code == 201
    lease = check.verify_activation(activated.json()["token"], fingerprint="machine-1")
    assert lease.updates_until == expiry
    assert lease.allows_release(expiry) and not lease.allows_release(expiry + timedelta(seconds=1))

    # After the expiry: still usable, for the builds released until it.
    sql.all(
        "UPDATE licenses SET expires_at = now() - interval '1 day' WHERE id = %s RETURNING id",
        lic.id,
    )
    expired_at = _second(sql.one("SELECT expires_at FROM licenses WHERE id = %s", lic.id))
    after = client.post(f"{API}/validate", json=body(lic)).json()
    assert after["valid"] is True and after["code"] == "VALID"
    assert after["license"]["status"] == "expired"
    assert after["license"]["updates_until"] == expired_at.isoformat().replace("+00:00", "Z")
    checked_in = client.post(f"{API}/check-in", json=body(lic))
    assert checked_in.status_code == 200
    renewed = check.verify_activation(
        checked_in.json()["token"], fingerprint="machine-1", released_at=expired_at
    )
    assert renewed.updates_until == expired_at and renewed.license_expires_at is None
    assert renewed.expires_at > datetime.now(UTC) + timedelta(days=6)  # a full lease
    with pytest.raises(Expired):
        check.verify_activation(
            checked_in.json()["token"],
            fingerprint="machine-1",
            released_at=expired_at + timedelta(seconds=1),
        )
    assert client.post(f"{API}/activate", json=body(lic, "machine-2")).status_code == 201
    features = client.get(
        f"{API}/features", params={"product": "local_cli", "license_key": lic.key}
    )
    assert features.status_code == 200


@pytest.mark.parametrize("status", ["suspended", "revoked"])
def test_fallback_does_not_save_a_suspended_or_revoked_license(
    client, make_license, status
) -> None:
    lic = make_license(
        tier="perpetual",
        expiry_behavior="fallback",
        expires_at=datetime(2020, 1, 1, tzinfo=UTC),
        status=status,
    )
    answer = client.post(f"{API}/validate", json=body(lic, None)).json()
    assert answer["valid"] is False and answer["code"] == status.upper()
    assert_problem(client.post(f"{API}/activate", json=body(lic)), 403, f"LICENSE_{status.upper()}")


def test_restrict_tiers_still_refuse_expired_licenses(client, make_license) -> None:
    lic = make_license(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    answer = client.post(f"{API}/validate", json=body(lic, None)).json()
    assert answer["code"] == "EXPIRED" and answer["license"]["updates_until"] is None
    assert_problem(client.post(f"{API}/activate", json=body(lic)), 403, "LICENSE_EXPIRED")

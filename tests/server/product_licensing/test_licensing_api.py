"""The product-facing licensing API in process: every code and status, seats, abuse limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from licensing_data import in_days
from licentia_verifier import Verifier, WrongMachine
from support import assert_problem

API = "/api/v1/licenses"


def body(lic, fingerprint: str | None = "machine-1", **extra):
    data = {"license_key": lic.key, "product": lic.product, **extra}
    if fingerprint is not None:
        data["fingerprint"] = fingerprint
    return data


def verifier(client, settings, product: str = "local_cli") -> Verifier:
    jwks = client.get("/.well-known/jwks.json").json()
    return Verifier.from_jwks(jwks, product=product, issuer=settings.issuer)


# --- validate -------------------------------------------------------------------------------


def test_validate_valid_with_nonce_round_trip(client, settings, make_license) -> None:
    lic = make_license(features={"max_projects": 99})
    response = client.post(f"{API}/validate", json=body(lic, None, nonce="n-123"))
    assert response.status_code == 200
    payload = response.json()
    assert payload["valid"] is True and payload["code"] == "VALID"
    summary = payload["license"]
    assert summary["id"] == str(lic.id)
    assert summary["product"] == "local_cli" and summary["tier"] == "pro"
    assert summary["status"] == "active" and summary["activations_count"] == 0
    assert summary["features"] == {"plugins": True, "max_projects": 99, "support": "email"}
    verified = verifier(client, settings).verify_license(payload["token"])
    assert verified.nonce == "n-123"
    assert verified.license_id == str(lic.id)
    assert verified.features["max_projects"] == 99
    other = client.post(f"{API}/validate", json=body(lic, None, nonce="n-456")).json()
    assert verifier(client, settings).verify_license(other["token"]).nonce == "n-456"
    no_nonce = client.post(f"{API}/validate", json=body(lic, None)).json()
    assert verifier(client, settings).verify_license(no_nonce["token"]).nonce is None


@pytest.mark.parametrize(
    ("kwargs", "code", "status"),
    [
        ({"status": "suspended"}, "SUSPENDED", "suspended"),
        ({"status": "revoked"}, "REVOKED", "revoked"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "EXPIRED", "expired"),
    ],
)
def test_validate_refusals_are_200_answers(client, make_license, kwargs, code, status) -> None:
    lic = make_license(**kwargs)
    response = client.post(f"{API}/validate", json=body(lic, None))
    assert response.status_code == 200
    payload = response.json()
    assert payload["valid"] is False and payload["code"] == code
    assert payload["token"] is None and payload["license"]["status"] == status


def test_validate_not_found_mismatch_not_activated(client, make_license) -> None:
    lic = make_license()
    unknown = client.post(
        f"{API}/validate", json={"license_key": "LK-NOPE", "product": "local_cli"}
    ).json()
    assert unknown == {
        "valid": False,
        "code": "NOT_FOUND",
        "detail": unknown["detail"],
        "license": None,
        "token": None,
        "key_certificate": None,
        "key_revocations": None,
        "root_endorsements": [],
    }
    mismatch = client.post(f"{API}/validate", json={**body(lic, None), "product": "cloud_ide"})
    assert mismatch.status_code == 200 and mismatch.json()["code"] == "PRODUCT_MISMATCH"
    not_activated = client.post(f"{API}/validate", json=body(lic, "machine-x")).json()
    assert not_activated["code"] == "NOT_ACTIVATED" and not_activated["token"] is None
    assert client.post(f"{API}/activate", json=body(lic, "machine-x")).status_code == 201
    activated = client.post(f"{API}/validate", json=body(lic, "machine-x")).json()
    assert activated["code"] == "VALID" and activated["license"]["activations_count"] == 1


def test_validate_accepts_a_key_in_any_case_and_spacing(client, make_license) -> None:
    lic = make_license()
    response = client.post(
        f"{API}/validate",
        json={"license_key": "  " + lic.key.lower() + " ", "product": lic.product},
    )
    assert response.json()["code"] == "VALID"


def test_validate_never_changes_a_seat(client, sql, make_license) -> None:
    lic = make_license(max_activations=1, lease_grace_days=0)
    assert client.post(f"{API}/activate", json=body(lic, "a")).status_code == 201
    sql.all("UPDATE activations SET lease_expires_at = now() - interval '1 day'")
    before = sql.all("SELECT id, lease_expires_at, deactivated_at FROM activations ORDER BY id")
    for fp in ("a", "b", None):
        client.post(f"{API}/validate", json=body(lic, fp, nonce="x"))
    after = sql.all("SELECT id, lease_expires_at, deactivated_at FROM activations ORDER BY id")
    assert before == after


def test_not_yet_started_license(client, make_license) -> None:
    lic = make_license(starts_at=in_days(2))
    assert client.post(f"{API}/validate", json=body(lic, None)).json()["code"] == "NOT_YET_VALID"
    assert_problem(client.post(f"{API}/activate", json=body(lic)), 403, "LICENSE_NOT_YET_VALID")


# --- activate -------------------------------------------------------------------------------


def test_activate_then_idempotent_repeat(client, settings, sql, make_license) -> None:
    lic = make_license(max_activations=2, offline_lease_days=3)
    first = client.post(f"{API}/activate", json=body(lic, "m1", name="laptop", platform="linux"))
    assert first.status_code == 201
    created = first.json()
    assert created["activations_count"] == 1 and created["max_activations"] == 2
    assert created["type"] == "activation_response" and created["version"] == 1
    lease = datetime.fromisoformat(created["lease_expires_at"])
    assert timedelta(days=3) - timedelta(minutes=1) < lease - datetime.now(UTC) <= timedelta(days=3)
    verified = verifier(client, settings).verify_activation(created["token"], fingerprint="m1")
    assert verified.activation_id == created["activation_id"]
    assert verified.expires_at == lease
    with pytest.raises(WrongMachine):
        verifier(client, settings).verify_activation(created["token"], fingerprint="m2")

    again = client.post(f"{API}/activate", json=body(lic, "m1"))
    assert again.status_code == 200
    repeated = again.json()
    assert repeated["activation_id"] == created["activation_id"]
    assert repeated["token"] != created["token"] and repeated["activations_count"] == 1
    rows = sql.all("SELECT fingerprint_hash, name, platform FROM activations")
    assert len(rows) == 1
    fp_hash, name, platform = rows[0]
    assert fp_hash != "m1" and len(fp_hash) == 43  # the hash, never the raw fingerprint
    assert (name, platform) == ("laptop", "linux")
    audit = sql.all("SELECT actor_type, actor_id, action, target_id FROM audit_events")
    assert audit == [("license", str(lic.id), "activation.create", created["activation_id"])]


def test_activation_limit(client, sql, make_license) -> None:
    lic = make_license(max_activations=2)
    for fp in ("a", "b"):
        assert client.post(f"{API}/activate", json=body(lic, fp)).status_code == 201
    assert_problem(client.post(f"{API}/activate", json=body(lic, "c")), 409, "ACTIVATION_LIMIT")
    assert client.post(f"{API}/activate", json=body(lic, "a")).status_code == 200
    assert sql.live(lic.id) == 2


def test_license_override_of_max_activations(client, make_license) -> None:
    lic = make_license(max_activations=5, license_max_activations=1)
    assert client.post(f"{API}/activate", json=body(lic, "a")).json()["max_activations"] == 1
    assert_problem(client.post(f"{API}/activate", json=body(lic, "b")), 409, "ACTIVATION_LIMIT")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"status": "suspended"}, "LICENSE_SUSPENDED"),
        ({"status": "revoked"}, "LICENSE_REVOKED"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, "LICENSE_EXPIRED"),
    ],
)
def test_activate_and_check_in_refusals(client, make_license, kwargs, code) -> None:
    lic = make_license(**kwargs)
    assert_problem(client.post(f"{API}/activate", json=body(lic)), 403, code)
    assert_problem(client.post(f"{API}/check-in", json=body(lic)), 403, code)
    assert_problem(
        client.get(f"{API}/features", params={"product": lic.product, "license_key": lic.key}),
        403,
        code,
    )


def test_unknown_key_and_product_mismatch(client, make_license) -> None:
    lic = make_license()
    unknown = {"license_key": "LK-UNKNOWN", "product": "local_cli", "fingerprint": "f"}
    for route in ("activate", "check-in", "deactivate"):
        assert_problem(client.post(f"{API}/{route}", json=unknown), 404, "LICENSE_NOT_FOUND")
        assert_problem(
            client.post(f"{API}/{route}", json={**body(lic), "product": "cloud_ide"}),
            422,
            "PRODUCT_MISMATCH",
        )


def test_lease_capped_by_license_expiry(client, settings, make_license) -> None:
    expiry = in_days(1).replace(microsecond=0)
    lic = make_license(expires_at=expiry, offline_lease_days=30)
    created = client.post(f"{API}/activate", json=body(lic)).json()
    assert datetime.fromisoformat(created["lease_expires_at"]) == expiry
    verified = verifier(client, settings).verify_activation(
        created["token"], fingerprint="machine-1"
    )
    assert verified.expires_at == expiry and verified.license_expires_at == expiry


def test_revoked_later_stops_check_in(client, sql, make_license) -> None:
    lic = make_license()
    assert client.post(f"{API}/activate", json=body(lic)).status_code == 201
    sql.all("UPDATE licenses SET status = 'revoked' WHERE id = %s", lic.id)
    assert_problem(client.post(f"{API}/check-in", json=body(lic)), 403, "LICENSE_REVOKED")


# --- check-in, deactivate, leases -------------------------------------------------------------


def test_check_in_renews_the_lease(client, settings, sql, make_license) -> None:
    lic = make_license(offline_lease_days=5)
    created = client.post(f"{API}/activate", json=body(lic)).json()
    sql.all("UPDATE activations SET lease_expires_at = now() + interval '1 hour'")
    response = client.post(f"{API}/check-in", json=body(lic))
    assert response.status_code == 200
    renewed = response.json()
    assert set(renewed) == {
        "token",
        "lease_expires_at",
        "key_certificate",
        "key_revocations",
        "root_endorsements",
    }
    lease = datetime.fromisoformat(renewed["lease_expires_at"])
    assert lease > in_days(4.9)
    assert sql.one("SELECT lease_expires_at FROM activations") == lease
    verified = verifier(client, settings).verify_activation(
        renewed["token"], fingerprint="machine-1"
    )
    assert verified.activation_id == created["activation_id"]
    assert_problem(client.post(f"{API}/check-in", json=body(lic, "other")), 404, "NOT_ACTIVATED")


def test_deactivate_frees_the_seat(client, sql, make_license) -> None:
    lic = make_license(max_activations=1)
    created = client.post(f"{API}/activate", json=body(lic, "a")).json()
    assert_problem(client.post(f"{API}/activate", json=body(lic, "b")), 409, "ACTIVATION_LIMIT")
    response = client.post(f"{API}/deactivate", json=body(lic, "a"))
    assert response.status_code == 204 and response.content == b""
    assert_problem(client.post(f"{API}/deactivate", json=body(lic, "a")), 404, "NOT_ACTIVATED")
    assert_problem(client.post(f"{API}/check-in", json=body(lic, "a")), 404, "NOT_ACTIVATED")
    assert client.post(f"{API}/activate", json=body(lic, "b")).status_code == 201
    assert (
        sql.one(
            "SELECT deactivation_reason FROM activations WHERE id = %s", created["activation_id"]
        )
        == "user"
    )
    actions = [row[0] for row in sql.all("SELECT action FROM audit_events ORDER BY id")]
    assert actions == ["activation.create", "activation.deactivate", "activation.create"]


def test_expired_lease_past_grace_releases_the_seat(client, sql, make_license) -> None:
    lic = make_license(max_activations=1, offline_lease_days=7, lease_grace_days=3)
    old = client.post(f"{API}/activate", json=body(lic, "gone")).json()
    # Lease over, but still inside the grace period: the seat is held.
    sql.all("UPDATE activations SET lease_expires_at = now() - interval '2 days'")
    assert_problem(client.post(f"{API}/activate", json=body(lic, "new")), 409, "ACTIVATION_LIMIT")
    assert client.post(f"{API}/check-in", json=body(lic, "gone")).status_code == 200
    # Lease over for longer than the grace period: the seat is free again.
    sql.all("UPDATE activations SET lease_expires_at = now() - interval '4 days'")
    assert_problem(client.post(f"{API}/check-in", json=body(lic, "gone")), 404, "NOT_ACTIVATED")
    assert client.post(f"{API}/activate", json=body(lic, "new")).status_code == 201
    assert (
        sql.one("SELECT deactivation_reason FROM activations WHERE id = %s", old["activation_id"])
        == "lease_expired"
    )
    assert sql.live(lic.id) == 1
    expired = sql.all(
        "SELECT actor_type, target_id, data->>'license_id' FROM audit_events "
        "WHERE action = 'activation.expire'"
    )
    assert expired == [("system", old["activation_id"], str(lic.id))]
    # The vanished machine comes back: it is a new activation, and the limit holds.
    assert_problem(client.post(f"{API}/activate", json=body(lic, "gone")), 409, "ACTIVATION_LIMIT")


def test_same_fingerprint_after_expiry_gets_a_new_activation(client, sql, make_license) -> None:
    lic = make_license(lease_grace_days=0)
    first = client.post(f"{API}/activate", json=body(lic)).json()
    sql.all("UPDATE activations SET lease_expires_at = now() - interval '1 minute'")
    second = client.post(f"{API}/activate", json=body(lic))
    assert second.status_code == 201
    assert second.json()["activation_id"] != first["activation_id"]
    assert sql.one("SELECT count(*) FROM activations") == 2
    assert sql.live(lic.id) == 1


def test_deactivation_limit_per_day(client, sql, make_license) -> None:
    lic = make_license(max_deactivations_per_day=2)
    for fp in ("a", "b"):
        client.post(f"{API}/activate", json=body(lic, fp))
        assert client.post(f"{API}/deactivate", json=body(lic, fp)).status_code == 204
    client.post(f"{API}/activate", json=body(lic, "c"))
    assert_problem(client.post(f"{API}/deactivate", json=body(lic, "c")), 409, "DEACTIVATION_LIMIT")
    assert sql.live(lic.id) == 1  # the refused deactivation did not free the seat
    # Deactivations older than 24 hours no longer count.
    sql.all(
        "UPDATE activations SET deactivated_at = now() - interval '25 hours' "
        "WHERE deactivated_at IS NOT NULL"
    )
    assert client.post(f"{API}/deactivate", json=body(lic, "c")).status_code == 204


# --- features -------------------------------------------------------------------------------


def test_features_by_tier_and_by_license(client, make_license) -> None:
    lic = make_license(features={"support": "priority"})
    by_tier = client.get(f"{API}/features", params={"product": "local_cli", "tier": "pro"})
    assert by_tier.status_code == 200
    assert by_tier.json() == {
        "product": "local_cli",
        "tier": "pro",
        "features": {"plugins": True, "max_projects": 50, "support": "email"},
    }
    by_key = client.get(f"{API}/features", params={"product": "local_cli", "license_key": lic.key})
    assert by_key.json()["features"]["support"] == "priority"
    assert_problem(
        client.get(f"{API}/features", params={"product": "local_cli", "tier": "gold"}),
        404,
        "TIER_NOT_FOUND",
    )
    assert_problem(
        client.get(f"{API}/features", params={"product": "local_cli", "license_key": "LK-NO"}),
        404,
        "LICENSE_NOT_FOUND",
    )
    assert_problem(
        client.get(f"{API}/features", params={"product": "cloud_ide", "license_key": lic.key}),
        422,
        "PRODUCT_MISMATCH",
    )
    for params in (
        {"product": "local_cli"},
        {"product": "local_cli", "tier": "pro", "license_key": lic.key},
        {"tier": "pro"},
        {"product": "x" * 10_000, "tier": "pro"},
    ):
        response = client.get(f"{API}/features", params=params)
        assert 400 <= response.status_code < 500, (params, response.text)


# --- abuse limits ---------------------------------------------------------------------------


def test_unknown_keys_are_limited_per_address(settings, signing_key, make_license) -> None:
    from litestar.testing import TestClient
    from msgspec.structs import replace

    from server.app import create_app

    lic = make_license()
    limited = replace(settings, unknown_key_attempts_per_minute=3)
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        guess = {"license_key": "LK-GUESS", "product": "local_cli", "fingerprint": "f"}
        answers = [client.post(f"{API}/validate", json=guess) for _ in range(3)]
        assert [a.json()["code"] for a in answers] == ["NOT_FOUND"] * 3
        refused = client.post(f"{API}/validate", json=guess)
        payload = assert_problem(refused, 429, "RATE_LIMITED")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert payload["status"] == 429
        # The counter survives the refused requests' rollbacks (activate 404 rolls back).
        assert_problem(client.post(f"{API}/activate", json=guess), 429, "RATE_LIMITED")
        # A good key from the same address is never throttled.
        for _ in range(5):
            assert client.post(f"{API}/validate", json=body(lic, None)).json()["valid"] is True
        assert client.post(f"{API}/activate", json=body(lic)).status_code == 201


# --- malformed input: always 4xx problem details, never 500 ----------------------------------

LONG = "x" * 10_000

MALFORMED = [
    {},
    {"license_key": "k"},
    {"license_key": 5, "product": "local_cli", "fingerprint": "f"},
    {"license_key": "k", "product": None, "fingerprint": "f"},
    {"license_key": LONG, "product": "local_cli", "fingerprint": "f"},
    {"license_key": "k", "product": LONG, "fingerprint": "f"},
    {"license_key": "k", "product": "local_cli", "fingerprint": LONG},
    {"license_key": "k", "product": "local_cli", "fingerprint": ""},
    {"license_key": "", "product": "local_cli", "fingerprint": "f"},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "nonce": LONG},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "unknown": 1},
    {"license_key": "k", "product": "local_cli", "fingerprint": ["f"]},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "name": LONG},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "platform": LONG},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "type": "bogus"},
    {"license_key": "k", "product": "local_cli", "fingerprint": "f", "version": -1},
    [],
    "a string",
    -5,
]


@pytest.mark.parametrize("route", ["validate", "activate", "check-in", "deactivate"])
def test_malformed_bodies_are_4xx_problems(client, make_license, route) -> None:
    lic = make_license()
    for bad in MALFORMED:
        bad_with_key = (
            {**bad, "license_key": lic.key}
            if isinstance(bad, dict) and bad.get("license_key") == "k"
            else bad
        )
        response = client.post(f"{API}/{route}", json=bad_with_key)
        assert 400 <= response.status_code < 500, (route, bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "code" in response.json()
    for raw in (b"{not json", b"", b"\xff\xfe", b'{"license_key": "k"'):
        response = client.post(
            f"{API}/{route}", content=raw, headers={"content-type": "application/json"}
        )
        assert 400 <= response.status_code < 500, (route, raw, response.text)


def test_validate_rejects_bad_fields_with_422(client) -> None:
    response = client.post(
        f"{API}/validate", json={"license_key": "k", "product": "p", "nonce": "n" * 129}
    )
    payload = assert_problem(response, 422, "VALIDATION_ERROR")
    assert "nonce" in payload["detail"]

"""Keyless machine trials in process: start, repeat, end, refusals, abuse limit, conversion
and the vendor's list with counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from licentia_verifier import Verifier
from support import assert_problem, bearer, check_trust_material

from keys.tokens import fingerprint_hash

TRIALS = "/api/v1/trials"


@pytest.fixture
def trial_tier(make_license):
    """Product ``local_cli`` with a self-serve 14-day trial tier and a ``pro`` tier."""
    make_license(
        tier="trial",
        is_trial=True,
        self_serve_trials=True,
        duration_days=14,
        max_activations=1,
        tier_features={"plugins": True, "max_projects": 3},
    )


def start(client, fingerprint: str = "machine-1", product: str = "local_cli", **extra):
    return client.post(TRIALS, json={"product": product, "fingerprint": fingerprint, **extra})


def verifier(client, settings) -> Verifier:
    jwks = client.get("/.well-known/jwks.json").json()
    return Verifier.from_jwks(jwks, product="local_cli", issuer=settings.issuer)


def test_start_and_repeat(client, settings, trial_tier, sql) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    first = start(client, name="Ada's laptop", platform="linux")
    assert first.status_code == 201, first.text
    payload = first.json()
    ends = datetime.fromisoformat(payload["trial_ends_at"])
    assert before + timedelta(days=14) <= ends <= datetime.now(UTC) + timedelta(days=14)
    assert payload["tier"] == "trial" and payload["features"]["max_projects"] == 3
    lic = verifier(client, settings).verify_activation(payload["token"], fingerprint="machine-1")
    assert lic.is_trial is True and lic.tier == "trial" and lic.expires_at == ends
    assert lic.license_expires_at == ends and lic.license_id == payload["trial_id"]
    assert lic.organization_id == "00000000-0000-0000-0000-000000000000"
    # Like every answer that carries a token, it carries the key's trust material: a product
    # that embeds only the root can verify its trial without having seen any other answer.
    root = client.get("/.well-known/licentia-root.json").json()
    claims = check_trust_material(payload, root, issuer=settings.issuer)
    assert claims["jti"] == lic.token_id

    # Only the fingerprint's hash is stored.
    rows = sql.all("SELECT fingerprint_hash, name, platform FROM trials")
    assert rows == [(fingerprint_hash("machine-1"), "Ada's laptop", "linux")]
    assert "machine-1" not in repr(sql.all("SELECT * FROM trials"))

    again = start(client)
    assert again.status_code == 200
    assert again.json()["trial_id"] == payload["trial_id"]
    assert again.json()["trial_ends_at"] == payload["trial_ends_at"]
    repeat = verifier(client, settings).verify_activation(
        again.json()["token"], fingerprint="machine-1"
    )
    assert repeat.token_id != lic.token_id
    assert sql.one("SELECT count(*) FROM trials") == 1

    # Another machine gets its own trial.
    assert start(client, "machine-2").status_code == 201

    # Once it ended, never again on this machine.
    sql.all("UPDATE trials SET ends_at = now() - interval '1 second' RETURNING id")
    ended = assert_problem(start(client), 409, "TRIAL_ALREADY_USED")
    assert ended["trial_ends_at"]
    assert sql.one("SELECT count(*) FROM trials") == 2


def test_no_trial_offered(client, make_license) -> None:
    make_license(tier="pro")  # a product without a self-serve trial tier
    assert_problem(start(client), 404, "TRIAL_NOT_OFFERED")
    assert_problem(start(client, product="no_such_product"), 404, "TRIAL_NOT_OFFERED")
    make_license(product="other", tier="trial", is_trial=True, duration_days=7)  # not self-serve
    assert_problem(start(client, product="other"), 404, "TRIAL_NOT_OFFERED")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"product": "local_cli"},
        {"product": "local_cli", "fingerprint": ""},
        {"product": "local_cli", "fingerprint": "f\x00"},
        {"product": "local_cli", "fingerprint": "f", "license_key": "LK"},
        {"product": "x" * 100, "fingerprint": "f"},
    ],
)
def test_bad_input(client, trial_tier, body) -> None:
    response = client.post(TRIALS, json=body)
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")


def test_trial_requests_are_limited_per_address(settings, signing_key, trial_tier) -> None:
    from litestar.testing import TestClient
    from msgspec.structs import replace

    from server.app import create_app

    limited = replace(settings, trial_requests_per_minute=3)
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        statuses = [start(client, f"m-{i}").status_code for i in range(3)]
        assert statuses == [201, 201, 201]
        refused = start(client, "m-4")
        assert_problem(refused, 429, "RATE_LIMITED")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert_problem(start(client, product="no_such_product"), 429, "RATE_LIMITED")


def test_conversion_and_the_vendors_list(client, admin_key, trial_tier, make_license, sql) -> None:
    for machine in ("buyer", "browser", "gone"):
        assert start(client, machine).status_code == 201
    sql.all(
        "UPDATE trials SET ends_at = now() - interval '1 day' WHERE fingerprint_hash = %s "
        "RETURNING id",
        fingerprint_hash("gone"),
    )
    # A trial-tier license activated on the machine is no conversion...
    trial_license = make_license(
        tier="trial", is_trial=True, self_serve_trials=True, duration_days=14, max_activations=1
    )
    activate = {"product": "local_cli", "fingerprint": "buyer"}
    assert (
        client.post(
            "/api/v1/licenses/activate", json={"license_key": trial_license.key, **activate}
        ).status_code
        == 201
    )
    assert sql.one("SELECT count(*) FROM trials WHERE converted_at IS NOT NULL") == 0
    # ... a real license of the product is.
    bought = make_license(tier="pro")
    activated = client.post(
        "/api/v1/licenses/activate", json={"license_key": bought.key, **activate}
    )
    assert activated.status_code == 201
    converted = sql.all(
        "SELECT converted_license_id, converted_organization_id FROM trials "
        "WHERE converted_at IS NOT NULL"
    )
    assert converted == [(bought.id, bought.organization_id)]
    event = sql.all(
        "SELECT organization_id, target_type, data->>'license_id' FROM audit_events "
        "WHERE action = 'trial.convert'"
    )
    assert event == [(bought.organization_id, "trial", str(bought.id))]
    assert_problem(start(client, "buyer"), 409, "TRIAL_ALREADY_USED")

    listed = client.get(TRIALS, params={"product": "local_cli"}, headers=bearer(admin_key))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["counts"] == {
        "running": 1,
        "ended": 1,
        "converted": 1,
        "total": 3,
        "conversion_rate": 0.3333,
    }
    assert sorted(t["status"] for t in page["items"]) == ["converted", "ended", "running"]
    only = client.get(
        TRIALS, params={"product": "local_cli", "status": "converted"}, headers=bearer(admin_key)
    ).json()
    assert [t["converted_license_id"] for t in only["items"]] == [str(bought.id)]
    assert only["counts"]["total"] == 3
    one = client.get(f"{TRIALS}/{only['items'][0]['id']}", headers=bearer(admin_key)).json()
    assert one["status"] == "converted" and one["fingerprint_hash"] == fingerprint_hash("buyer")
    paged = client.get(TRIALS, params={"limit": 2}, headers=bearer(admin_key)).json()
    assert len(paged["items"]) == 2 and paged["next_cursor"]
    rest = client.get(
        TRIALS, params={"limit": 2, "cursor": paged["next_cursor"]}, headers=bearer(admin_key)
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    other = client.get(TRIALS, params={"product": "nothing"}, headers=bearer(admin_key)).json()
    assert other["items"] == [] and other["counts"]["conversion_rate"] is None


def test_the_list_is_for_admin_keys(client, trial_tier) -> None:
    assert_problem(client.get(TRIALS), 401)
    assert_problem(client.get(TRIALS, params={"status": "sleeping"}), 401)

"""Change of plan with the same key (POST /licenses/{id}/change-tier and the CLI), and the
one-trial-per-organization rule of trial tiers."""

from __future__ import annotations

import factories
import pytest
from click.testing import CliRunner
from licentia_verifier import Verifier
from support import assert_problem, bearer

from server.cli import main

API = "/api/v1/licenses"
TEAM_FEATURES = {"plugins": True, "max_projects": 500, "support": "phone"}


@pytest.fixture
def tiers(catalog, owner_db) -> dict:
    """``team`` (10 seats) and ``trial`` (a 14-day trial tier) next to ``pro`` and ``free``."""
    name = owner_db.execute("SELECT name FROM products WHERE code = 'local_cli'").fetchone()[0]
    factories.product(
        owner_db,
        "local_cli",
        {
            "team": factories.Tier(10, TEAM_FEATURES, name="team"),
            "trial": factories.Tier(1, {"plugins": True}, 14, name="trial", is_trial=True),
        },
        name=name,
    )
    return catalog


def _activate(client, key: str, fingerprint: str) -> None:
    response = client.post(
        f"{API}/activate",
        json={"license_key": key, "product": "local_cli", "fingerprint": fingerprint},
    )
    assert response.status_code == 201, response.text


def _change(client, admin_key: str, license_id: str, **body):
    return client.post(f"{API}/{license_id}/change-tier", json=body, headers=bearer(admin_key))


def test_the_key_and_the_machines_stay(
    client, admin_key, settings, tiers, make_org, issue, owner_db
) -> None:
    lic = issue(make_org(), "pro", features={"beta": True})
    for machine in ("m-1", "m-2"):
        _activate(client, lic["key"], machine)

    changed = _change(client, admin_key, lic["id"], tier="team")
    assert changed.status_code == 200, changed.text
    read = changed.json()
    assert (read["id"], read["key_prefix"], read["tier"]) == (lic["id"], lic["key_prefix"], "team")
    assert read["max_activations"] == 10 and read["activations_count"] == 2
    assert read["features"] == {**TEAM_FEATURES, "beta": True}  # the override is kept

    # The next validate (same key) answers with the new plan; the seats are still held.
    answer = client.post(
        f"{API}/validate",
        json={"license_key": lic["key"], "product": "local_cli", "fingerprint": "m-1"},
    ).json()
    assert answer["code"] == "VALID" and answer["license"]["tier"] == "team"
    jwks = client.get("/.well-known/jwks.json").json()
    token = Verifier.from_jwks(jwks, product="local_cli", issuer=settings.issuer).verify_license(
        answer["token"]
    )
    assert token.tier == "team" and token.max_activations == 10
    event = owner_db.execute(
        "SELECT data, actor_type FROM audit_events WHERE action = 'license.change_tier'"
    ).fetchone()
    assert event[0]["previous_tier"] == "pro" and event[0]["tier"] == "team"
    assert event[0]["released"] == [] and event[1] == "api_key"

    # Seats and expiry can be given with the change; null seats means the tier's.
    again = _change(
        client, admin_key, lic["id"], tier="pro", max_activations=2, expires_at=None
    ).json()
    assert again["max_activations"] == 2 and again["expires_at"] is None
    assert (
        _change(client, admin_key, lic["id"], tier="team", max_activations=None).json()[
            "max_activations"
        ]
        == 10
    )


def test_more_machines_than_seats(client, admin_key, tiers, make_org, issue, owner_db) -> None:
    lic = issue(make_org(), "pro")
    for machine in ("old", "newest", "middle"):
        _activate(client, lic["key"], machine)
    for machine, hours in (("old", 30), ("middle", 20), ("newest", 1)):
        owner_db.execute(
            "UPDATE activations SET last_check_in_at = now() - make_interval(hours => %s) "
            "WHERE license_id = %s AND fingerprint_hash = %s",
            (hours, lic["id"], _fp(machine)),
        )

    refused = _change(client, admin_key, lic["id"], tier="free")
    problem = assert_problem(refused, 409, "SEATS_IN_USE")
    assert (problem["activations_count"], problem["max_activations"], problem["excess"]) == (
        3,
        1,
        2,
    )
    assert "3 machine(s)" in problem["detail"]
    assert (
        owner_db.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'license.change_tier'"
        ).fetchone()[0]
        == 0
    )

    released = _change(client, admin_key, lic["id"], tier="free", release="least_recently_seen")
    assert released.status_code == 200, released.text
    assert released.json()["activations_count"] == 1 and released.json()["tier"] == "free"
    live = owner_db.execute(
        "SELECT fingerprint_hash FROM activations WHERE license_id = %s AND deactivated_at IS NULL",
        (lic["id"],),
    ).fetchall()
    assert live == [(_fp("newest"),)]
    freed = owner_db.execute(
        "SELECT a.fingerprint_hash, a.deactivation_reason, e.data->>'reason' "
        "FROM activations a JOIN audit_events e ON e.target_id = a.id::text "
        "AND e.action = 'activation.deactivate' ORDER BY a.fingerprint_hash"
    ).fetchall()
    assert sorted(freed) == sorted(
        [(_fp("old"), "plan_change", "plan_change"), (_fp("middle"), "plan_change", "plan_change")]
    )
    data = owner_db.execute(
        "SELECT data FROM audit_events WHERE action = 'license.change_tier'"
    ).fetchone()[0]
    assert len(data["released"]) == 2


def _fp(machine: str) -> str:
    from keys.tokens import fingerprint_hash

    return fingerprint_hash(machine)


def test_refusals(client, admin_key, tiers, make_org, issue, user_headers) -> None:
    org = make_org()
    lic = issue(org, "pro")
    assert_problem(
        _change(client, admin_key, lic["id"], tier="team", product="other_product"),
        422,
        "PRODUCT_CHANGE_UNSUPPORTED",
    )
    assert (
        _change(client, admin_key, lic["id"], tier="team", product="local_cli").status_code == 200
    )
    assert_problem(_change(client, admin_key, lic["id"], tier="gold"), 422, "UNKNOWN_TIER")
    bad_release = _change(client, admin_key, lic["id"], tier="team", release="random")
    assert_problem(bad_release, 422, "VALIDATION_ERROR")
    assert_problem(
        _change(client, admin_key, "00000000-0000-0000-0000-000000000001", tier="team"),
        404,
        "LICENSE_NOT_FOUND",
    )
    forbidden = client.post(
        f"{API}/{lic['id']}/change-tier", json={"tier": "team"}, headers=user_headers(org, "owner")
    )
    assert forbidden.status_code == 403
    client.post(f"{API}/{lic['id']}/revoke", headers=bearer(admin_key))
    assert_problem(_change(client, admin_key, lic["id"], tier="pro"), 409, "LICENSE_REVOKED")


def test_a_trial_tier_is_issued_once_per_organization(
    client, admin_key, tiers, make_org, issue
) -> None:
    org, other = make_org("A"), make_org("B")
    first = issue(org, "trial")
    assert first["is_trial"] is True and first["max_activations"] == 1
    again = client.post(
        API,
        json={"organization_id": str(org), "product": "local_cli", "tier": "trial"},
        headers=bearer(admin_key),
    )
    problem = assert_problem(again, 409, "TRIAL_ALREADY_USED")
    assert problem["license_id"] == first["id"]
    assert issue(org, "trial", allow_repeat_trial=True)["is_trial"] is True
    assert issue(other, "trial")["is_trial"] is True
    assert issue(org, "pro")["is_trial"] is False


def test_cli_change_tier(
    settings, signing_key, monkeypatch, tiers, make_org, issue, owner_db
) -> None:
    monkeypatch.setenv("LICENTIA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LICENTIA_KEY_ENCRYPTION_KEY", settings.key_encryption_key or "")
    monkeypatch.delenv("LICENTIA_MIGRATION_DATABASE_URL", raising=False)
    lic = issue(make_org(), "pro")
    runner = CliRunner()
    result = runner.invoke(main, ["licenses", "change-tier", lic["id"], "team"])
    assert result.exit_code == 0, result.output
    assert "local_cli/team" in result.stdout and "seats 0/10" in result.stdout
    unknown = runner.invoke(main, ["licenses", "change-tier", lic["id"], "gold"])
    assert unknown.exit_code != 0 and "UNKNOWN_TIER" in unknown.output
    actor, data = owner_db.execute(
        "SELECT actor_type, data FROM audit_events WHERE action = 'license.change_tier'"
    ).fetchone()
    assert actor == "cli" and data["previous_tier"] == "pro"

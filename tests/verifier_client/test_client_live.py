"""licentia_verifier.LicenseClient against a real `licentia serve` process.

Leases are one day (the tier's offline_lease_days=1); the client and the verifier take
``now`` from the caller, so "twenty hours later" is a parameter, not a wait.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import pytest
from licentia_verifier import Expired, Verifier
from licentia_verifier.client import (
    ActivationRefused,
    LicenseClient,
    NotActivated,
    ServerUnavailable,
)
from support import stop_server

from server.license_admin.facts import new_license_key

PRODUCT = "local_cli"
HOUR = 3600
LEASE = 24 * HOUR  # offline_lease_days=1
FEATURES = {"plugins": True, "max_projects": 50, "support": "email"}


@pytest.fixture
def one_day_license(make_license):
    """A license of PRODUCT, tier "pro", with a one-day offline lease."""

    def factory(*, max_activations: int = 3, product: str = PRODUCT):
        return make_license(
            product=product,
            max_activations=max_activations,
            tier_features=FEATURES,
            offline_lease_days=1,
        )

    return factory


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {})


@pytest.fixture
def server(live_server_factory):
    return live_server_factory()


@pytest.fixture
def verifier(server, settings) -> Verifier:
    """Built like a product does: the server's published key set, embedded at build time."""
    return Verifier.from_jwks(
        get_json(server.base_url + "/.well-known/jwks.json"),
        product=PRODUCT,
        issuer=settings.issuer,
    )


@pytest.fixture
def make_client(server, verifier, tmp_path):
    def factory(fingerprint: str = "machine-1", **kwargs: Any) -> LicenseClient:
        kwargs.setdefault("timeout", 5.0)
        return LicenseClient(
            server.base_url,
            product=PRODUCT,
            verifier=verifier,
            cache_dir=tmp_path / fingerprint,
            fingerprint=fingerprint,
            **kwargs,
        )

    return factory


def test_activate_verify_offline_check_in_and_deactivate(make_client, one_day_license, sql):
    licensed = one_day_license()
    client = make_client()

    activated = client.activate(licensed.key, name="build box", platform="linux")

    assert activated.license_id == str(licensed.id)
    assert dict(activated.features) == FEATURES
    assert activated.max_activations == 3
    lease = activated.expires_at.timestamp() - activated.issued_at.timestamp()
    assert LEASE - 5 <= lease <= LEASE
    row = sql.all("SELECT id, name, platform FROM activations WHERE license_id = %s", licensed.id)
    assert [(str(r[0]), r[1], r[2]) for r in row] == [
        (activated.activation_id, "build box", "linux")
    ]

    # At start-up, with most of the lease left: the cached token, no check-in.
    assert client.license() == activated
    sql.all(
        "UPDATE activations SET last_check_in_at = now() - interval '20 hours' WHERE id = %s",
        row[0][0],
    )
    recent = "SELECT last_check_in_at > now() - interval '1 hour' FROM activations WHERE id = %s"

    # Twenty hours later (a sixth of the lease left): one check-in, and a new token.
    later = time.time() + 20 * HOUR
    renewed = client.license(now=later)
    assert renewed.token_id != activated.token_id
    assert renewed.activation_id == activated.activation_id
    # The server's clock has not moved: the new lease ends no earlier (in a real run, a
    # day after the check-in).
    assert renewed.expires_at >= activated.expires_at
    assert sql.one(recent, row[0][0]) is True
    assert client.license(now=later + 60) == renewed  # stored; no second check-in needed

    # Activating again on the same machine keeps the one seat.
    again = client.activate(licensed.key)
    assert again.activation_id == activated.activation_id
    assert sql.live(licensed.id) == 1

    client.deactivate()
    assert sql.live(licensed.id) == 0
    with pytest.raises(NotActivated):
        client.license()
    with pytest.raises(NotActivated):
        client.deactivate()


def test_refusals_carry_the_server_code(make_client, one_day_license):
    licensed = one_day_license(max_activations=1)
    make_client("machine-1").activate(licensed.key)

    with pytest.raises(ActivationRefused) as full:
        make_client("machine-2").activate(licensed.key)
    assert (full.value.code, full.value.status) == ("ACTIVATION_LIMIT", 409)

    with pytest.raises(ActivationRefused) as unknown:
        make_client("machine-3").activate(new_license_key()[0])
    assert (unknown.value.code, unknown.value.status) == ("LICENSE_NOT_FOUND", 404)

    other = one_day_license(product="cloud_ide")
    with pytest.raises(ActivationRefused) as mismatch:
        make_client("machine-4").activate(other.key)
    assert (mismatch.value.code, mismatch.value.status) == ("PRODUCT_MISMATCH", 422)


def test_server_unreachable_keeps_working_until_the_lease_ends(
    server, make_client, one_day_license
):
    licensed = one_day_license()
    client = make_client()
    activated = client.activate(licensed.key)
    stop_server(server)

    start = time.time()
    assert client.license(now=start + 20 * HOUR) == activated  # check-in failed quietly
    with pytest.raises(ServerUnavailable):
        client.check_in()
    assert client.license(now=start + 23 * HOUR) == activated
    with pytest.raises(Expired):
        client.license(now=start + LEASE + 10 * 60)


def test_definitive_refusals_keep_the_token_until_its_lease_ends_then_not(
    make_client, one_day_license, sql
):
    revoked, freed = one_day_license(), one_day_license()
    client, other = make_client("machine-1"), make_client("machine-2")
    activated = client.activate(revoked.key)
    other_activated = other.activate(freed.key)
    sql.all("UPDATE licenses SET status = 'revoked' WHERE id = %s", revoked.id)
    sql.all("UPDATE activations SET deactivated_at = now() WHERE license_id = %s", freed.id)

    # Neither is visible offline: the token is valid until its lease ends.
    assert client.license() == activated
    start = time.time()
    # When the check-in is due, the server refuses it; the cached token is kept.
    assert client.license(now=start + 20 * HOUR) == activated
    assert client.refusal is not None
    assert (client.refusal.code, client.refusal.status) == ("LICENSE_REVOKED", 403)
    assert other.license(now=start + 20 * HOUR) == other_activated
    assert other.refusal is not None
    assert (other.refusal.code, other.refusal.status) == ("NOT_ACTIVATED", 404)
    assert client.license(now=start + 23 * HOUR) == activated
    with pytest.raises(Expired, match="LICENSE_REVOKED"):
        client.license(now=start + LEASE + 10 * 60)
    with pytest.raises(Expired, match="NOT_ACTIVATED"):
        other.license(now=start + LEASE + 10 * 60)


def test_air_gapped_request_and_response_files_round_trip(
    server, make_client, one_day_license, sql, tmp_path
):
    licensed = one_day_license()
    # On the machine without network (its base URL is never used).
    client = make_client("air-gapped")
    request_path = tmp_path / "request.json"
    client.write_offline_request(request_path, licensed.key, name="lab pc")

    # On any connected machine, the request file is posted as it is.
    status, answer = post_json(
        server.base_url + "/api/v1/licenses/activate", json.loads(request_path.read_text())
    )
    assert status == 201
    response_path = tmp_path / "response.json"
    response_path.write_text(json.dumps(answer))

    # Back on the air-gapped machine.
    license = client.install(response_path)
    assert license.activation_id == answer["activation_id"]
    assert client.license() == license
    assert sql.one("SELECT name FROM activations WHERE license_id = %s", licensed.id) == "lab pc"

    # And back: the deactivation request frees the seat when it is posted.
    deactivation_path = tmp_path / "deactivate.json"
    client.write_offline_deactivation_request(deactivation_path)
    with pytest.raises(NotActivated):
        client.license()
    status, _ = post_json(
        server.base_url + "/api/v1/licenses/deactivate", json.loads(deactivation_path.read_text())
    )
    assert status == 204
    assert sql.live(licensed.id) == 0


def test_consume_a_meter_and_show_the_remaining_quota(make_client, make_license, sql):
    licensed = make_license(tier="metered", meters={"automations": {"limit": 2, "period": "month"}})
    client = make_client()
    with pytest.raises(NotActivated):
        client.consume("automations")
    client.activate(licensed.key)

    first = client.consume("automations")
    assert (first.meter, first.used, first.limit, first.remaining) == ("automations", 1, 2, 1)
    assert first.period_ends_at is not None and first.license.license_id == str(licensed.id)
    # A retry with the same key after a lost answer is counted once.
    again = client.consume("automations", idempotency_key="run-42")
    assert client.consume("automations", idempotency_key="run-42").used == again.used == 2
    with pytest.raises(ActivationRefused) as over:
        client.consume("automations")
    assert (over.value.code, over.value.status) == ("USAGE_LIMIT", 409)
    assert client.consume("automations", -1).remaining == 1
    assert client.consume("automations", 0).used == 1
    assert sql.one("SELECT used FROM license_usage WHERE license_id = %s", licensed.id) == 1

"""Key rotation with products in the field, against a real `licentia serve` process.

A product that embeds only the root follows a rotation and then verifies offline in a fresh
process; a product that pins the key set gets a clean ``UnknownKey`` for an activation
signed by a key it has never seen, and activating again after its update reuses the seat.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest
from licentia_verifier import LicenseClient, UnknownKey, Verifier
from support import bearer, stop_server

PRODUCT = "local_cli"

OFFLINE_RUN = """
import json, sys
from licentia_verifier import LicenseClient, Verifier
root, issuer, cache, url = sys.argv[1:5]
verifier = Verifier.from_root(root, product="local_cli", issuer=issuer)
client = LicenseClient(url, product="local_cli", verifier=verifier, cache_dir=cache,
                       fingerprint="machine-root-1", timeout=2.0)
print(json.dumps({"token_id": client.license().token_id, "keys": sorted(verifier.key_ids)}))
"""


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def rotate(base_url: str, admin_key: str) -> str:
    request = urllib.request.Request(
        base_url + "/api/v1/keys/rotate", data=b"", headers=bearer(admin_key), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        return json.loads(response.read())["kid"]


def token_kid(client: LicenseClient) -> str:
    with open(client.cache_path) as handle:
        token = json.load(handle)["token"]
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def test_a_root_product_follows_a_rotation_and_verifies_offline_in_a_fresh_process(
    live_server_factory, settings, admin_key, make_license, tmp_path
):
    server = live_server_factory()
    root = get_json(server.base_url + "/.well-known/licentia-root.json")
    (tmp_path / "root.json").write_text(json.dumps(root))
    well_known = server.base_url + "/.well-known/key-certificates.json"
    verifier = Verifier.from_root(root, product=PRODUCT, issuer=settings.issuer)
    client = LicenseClient(
        server.base_url,
        product=PRODUCT,
        verifier=verifier,
        cache_dir=tmp_path / "cache",
        fingerprint="machine-root-1",
        timeout=5.0,
    )
    licensed = make_license(product=PRODUCT, offline_lease_days=1)

    # The certificates the server issues are accepted by the verifier as they are.
    assert verifier.add_trust_material(get_json(well_known)) == []
    first_kid = verifier.key_ids[0]
    activated = client.activate(licensed.key)
    assert token_kid(client) == first_kid

    new_kid = rotate(server.base_url, admin_key)
    assert new_kid != first_kid
    # The check-in answer carries the new key's certificate: nothing else is fetched.
    renewed = client.check_in()
    assert token_kid(client) == new_kid
    assert renewed.activation_id == activated.activation_id

    # A fresh process with the server gone: the stored certificates are verified again
    # under the embedded root, and the new key's token verifies offline.
    stop_server(server)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            OFFLINE_RUN,
            str(tmp_path / "root.json"),
            settings.issuer,
            str(tmp_path / "cache"),
            server.base_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "token_id": renewed.token_id,
        "keys": sorted([first_kid, new_kid]),
    }


def test_an_activation_signed_by_a_key_the_product_does_not_know_is_a_clean_unknown_key(
    live_server_factory, settings, admin_key, make_license, sql, tmp_path
):
    server = live_server_factory()
    shipped = get_json(server.base_url + "/.well-known/jwks.json")  # built before the rotation
    licensed = make_license(product=PRODUCT)
    rotate(server.base_url, admin_key)

    def client(jwks: dict[str, Any]) -> LicenseClient:
        return LicenseClient(
            server.base_url,
            product=PRODUCT,
            verifier=Verifier.from_jwks(jwks, product=PRODUCT, issuer=settings.issuer),
            cache_dir=tmp_path / "cache",
            fingerprint="machine-pinned-1",
            timeout=5.0,
        )

    with pytest.raises(UnknownKey, match="holds its seat") as caught:
        client(shipped).activate(licensed.key)
    assert "reuses the same seat" in str(caught.value)
    assert sql.live(licensed.id) == 1  # the server took the seat

    # The product, updated with the new key set, activates again: the same seat.
    updated = client(get_json(server.base_url + "/.well-known/jwks.json"))
    activated = updated.activate(licensed.key)
    assert sql.live(licensed.id) == 1
    assert activated.license_id == str(licensed.id)


def test_a_root_product_whose_first_answer_is_a_keyless_trial_verifies_it(
    live_server_factory, settings, make_license, tmp_path
):
    """A new user starts a trial before ever entering a key: the trial answer carries the
    certificate, so a product that embeds only the root needs nothing else, and keeps it."""
    server = live_server_factory()
    make_license(
        product="trialled", tier="trial", is_trial=True, self_serve_trials=True, duration_days=14
    )
    root = get_json(server.base_url + "/.well-known/licentia-root.json")

    def client(verifier: Verifier) -> LicenseClient:
        return LicenseClient(
            server.base_url,
            product="trialled",
            verifier=verifier,
            cache_dir=tmp_path / "cache",
            fingerprint="machine-trial-1",
            timeout=5.0,
        )

    verifier = Verifier.from_root(root, product="trialled", issuer=settings.issuer)
    assert verifier.key_ids == ()  # knows no signing key yet
    started = client(verifier).start_trial(name="laptop")
    assert started.is_trial and started.tier == "trial"
    stop_server(server)
    # A later start, offline: the certificate kept in the cache verifies the trial's token.
    later = Verifier.from_root(root, product="trialled", issuer=settings.issuer)
    assert client(later).license() == started

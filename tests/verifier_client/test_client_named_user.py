"""``LicenseClient.activate(key, user_token=...)`` for a named-user license, against a real
``licentia serve`` process: the seat is bound to the user, and the token says so."""

from __future__ import annotations

import json
import urllib.request

import factories
import psycopg
import pytest
from licentia_verifier import Verifier
from licentia_verifier.client import ActivationRefused, LicenseClient

PRODUCT = "cloud_ide_client"


def test_activate_with_the_users_access_token(
    live_server_factory, database, settings, tmp_path
) -> None:
    server = live_server_factory()
    with psycopg.connect(database.owner_url, autocommit=True) as db:
        factories.product(db, PRODUCT, {"team": factories.Tier(seat_kind="user", max_users=2)})
        org = factories.organization(db)
        alice = factories.user(db, org)
        bob = factories.user(db, org)
        lic = factories.license(db, org, PRODUCT, "team")
        factories.license_user(db, lic, alice)
    token_of = {
        user: factories.access_headers(settings, user, org, "member")["Authorization"][7:]
        for user in (alice, bob)
    }
    with urllib.request.urlopen(server.base_url + "/.well-known/jwks.json", timeout=10) as r:
        jwks = json.loads(r.read())
    verifier = Verifier.from_jwks(jwks, product=PRODUCT, issuer=settings.issuer)

    def client(fingerprint: str) -> LicenseClient:
        return LicenseClient(
            server.base_url,
            product=PRODUCT,
            verifier=verifier,
            cache_dir=tmp_path / fingerprint,
            fingerprint=fingerprint,
            timeout=5.0,
        )

    with pytest.raises(ActivationRefused) as refused:
        client("m-1").activate(lic.key)
    assert (refused.value.code, refused.value.status) == ("USER_TOKEN_REQUIRED", 401)
    with pytest.raises(ActivationRefused) as refused:
        client("m-1").activate(lic.key, user_token=token_of[bob])
    assert (refused.value.code, refused.value.status) == ("USER_NOT_ASSIGNED", 403)
    with pytest.raises(ValueError):
        client("m-1").activate(lic.key, user_token=" ")

    machine = client("m-1")
    activated = machine.activate(lic.key, name="Alice's laptop", user_token=token_of[alice])
    assert activated.user_id == str(alice)
    assert machine.license() == activated  # offline, from the stored token
    assert machine.check_in().user_id == str(alice)
    stored = (tmp_path / "m-1").rglob("*")
    assert not any(token_of[alice] in p.read_text() for p in stored if p.is_file())

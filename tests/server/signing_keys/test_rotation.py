"""Rotating the signing key through the API: visible to this process at once, and only
after the rotation has committed; activation times must carry an offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import factories
import jwt
import psycopg
import pytest
from litestar.testing import TestClient
from support import TestDatabase, bearer

from server.signing_keys.keyring import Keyring

ROTATE = "/api/v1/keys/rotate"


def _license(client: TestClient, admin_key: str, owner_db: psycopg.Connection) -> str:
    factories.product(owner_db, "cli", {"pro": factories.Tier(max_activations=3, features={})})
    org = factories.organization(owner_db)
    return str(factories.license(factories.AdminApi(client, bearer(admin_key)), org, "cli").id)


def _token_kid(client: TestClient, admin_key: str, license_id: str) -> str:
    response = client.get(f"/api/v1/licenses/{license_id}/token", headers=bearer(admin_key))
    assert response.status_code == 200, response.text
    return jwt.get_unverified_header(response.json()["token"])["kid"]


def test_rotation_is_used_by_the_next_signature_and_invalidated_after_commit(
    client: TestClient,
    admin_key: str,
    database: TestDatabase,
    owner_db: psycopg.Connection,
    signing_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    license_id = _license(client, admin_key, owner_db)
    assert _token_kid(client, admin_key, license_id) == signing_key

    committed_at_invalidation: list[str] = []
    original = Keyring.invalidate

    def invalidate(self: Keyring) -> None:
        # What another connection sees now: the new key only if the rotation committed.
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            row = conn.execute("SELECT kid FROM signing_keys WHERE state = 'active'").fetchone()
        committed_at_invalidation.append(row[0])
        original(self)

    monkeypatch.setattr(Keyring, "invalidate", invalidate)
    rotated = client.post(ROTATE, headers=bearer(admin_key))
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != signing_key
    assert committed_at_invalidation == [new_kid]
    assert _token_kid(client, admin_key, license_id) == new_kid


@pytest.mark.parametrize(
    "activate_at", ["2030-01-01T00:00:00", "9999-12-31T00:00:00Z", "not a time"]
)
def test_activate_at_needs_an_offset_and_a_sane_year(
    client: TestClient, admin_key: str, activate_at: str
) -> None:
    response = client.post(ROTATE, json={"activate_at": activate_at}, headers=bearer(admin_key))
    assert response.status_code == 422, response.text


def test_activate_at_with_an_offset_is_accepted(client: TestClient, admin_key: str) -> None:
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = client.post(ROTATE, json={"activate_at": later}, headers=bearer(admin_key))
    assert response.status_code == 201, response.text
    assert response.json()["state"] == "pending"


def test_cli_rotation_now_warns_products_that_pin_keys(settings, signing_key) -> None:
    from click.testing import CliRunner

    from server.cli import main

    env = {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_MIGRATION_DATABASE_URL": settings.migration_database_url or "",
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
    }
    now = CliRunner().invoke(main, ["keys", "rotate"], env=env)
    assert now.exit_code == 0, now.output
    assert now.stdout.split()[1] == "active"
    warning = " ".join(now.stderr.split())
    assert warning.startswith("warning:")
    for hint in ("Verifier.from_jwks", "UnknownKey", "released", "--activate-at", "from_root"):
        assert hint in warning, hint

    later = CliRunner().invoke(
        main, ["keys", "rotate", "--activate-at", "2099-01-01T00:00:00"], env=env
    )
    assert later.exit_code == 0, later.output
    assert later.stdout.split()[1] == "pending" and "warning" not in later.stderr

"""Every answer that carries a token carries the trust material of the key that signed it
(docs/token-format.md, "Where trust material comes from"): validate, activate, check-in, the
offline response file and the admin's offline license token. Each is checked as a product
that embeds only the root would check it, with the reference checker of the spec
(``support.check_trust_material``), before and after an immediate rotation, a revocation
and a root rotation."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from support import bearer, check_trust_material, run
from vectors.test_certificate_vectors import Refused

from keys.crypto import parse_kek
from server.app import create_app
from server.cli import main
from server.cli_support import admin_session
from server.signing_keys import service as store

API = "/api/v1/licenses"
TRUST = ("key_certificate", "key_revocations", "root_endorsements")


def _claims(token: str, part: int = 1) -> dict:
    segment = token.split(".")[part]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _compact(value) -> str:
    """An id as tokens carry it (base64url of its 16 bytes)."""
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode()


def _kid(token: str) -> str:
    return _claims(token, 0)["kid"]


def _body(lic, fingerprint: str = "machine-1") -> dict:
    return {"license_key": lic.key, "product": lic.product, "fingerprint": fingerprint}


def _answers(client: TestClient, lic, admin_key: str) -> dict[str, dict]:
    """One answer of each kind that carries a token, for one license and machine."""
    activated = client.post(f"{API}/activate", json=_body(lic))
    assert activated.status_code in (200, 201), activated.text
    checked_in = client.post(f"{API}/check-in", json=_body(lic))
    assert checked_in.status_code == 200, checked_in.text
    validated = client.post(f"{API}/validate", json=_body(lic))
    assert validated.json()["valid"] is True, validated.text
    token = client.get(f"{API}/{lic.id}/token", headers=bearer(admin_key))
    assert token.status_code == 200, token.text
    return {
        "activate": activated.json(),
        "check-in": checked_in.json(),
        "validate": validated.json(),
        "license token": token.json(),
    }


def test_every_answer_with_a_token_carries_its_keys_certificate(
    client, settings, make_license, admin_key, signing_key
) -> None:
    root = client.get("/.well-known/licentia-root.json").json()
    lic = make_license()
    for name, answer in _answers(client, lic, admin_key).items():
        assert _kid(answer["token"]) == signing_key, name
        assert _claims(answer["key_certificate"])["sub"] == signing_key, name
        assert answer["key_revocations"] is None and answer["root_endorsements"] == [], name
        claims = check_trust_material(answer, root, issuer=settings.issuer)
        assert claims["sub"] == _compact(lic.id), name


def test_answers_without_a_token_carry_no_trust_material(client, make_license) -> None:
    lic = make_license(status="suspended")
    refused = client.post(f"{API}/validate", json=_body(lic)).json()
    assert refused["valid"] is False and refused["token"] is None
    assert [refused[m] for m in TRUST] == [None, None, []]


def test_the_openapi_schema_names_the_trust_material(client) -> None:
    schemas = client.get("/schema/openapi.json").json()["components"]["schemas"]
    for name in ("ValidateResponse", "ActivationResponse", "CheckInResponse", "LicenseToken"):
        found = [s for key, s in schemas.items() if key.endswith(name)]
        assert found, name
        properties = found[0]["properties"]
        assert set(TRUST) <= set(properties), name
        if name != "ValidateResponse":
            assert set(TRUST) <= set(found[0]["required"]), name
        assert "key+jwt" in json.dumps(properties["key_certificate"]), name


def test_after_an_immediate_rotation_and_a_revocation_root_products_follow(
    client, settings, make_license, admin_key, signing_key
) -> None:
    # What a product embedded at build time: the root only, before any rotation.
    root = client.get("/.well-known/licentia-root.json").json()
    lic = make_license()
    before = _answers(client, lic, admin_key)

    rotated = client.post("/api/v1/keys/rotate", headers=bearer(admin_key))
    assert rotated.status_code == 201, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != signing_key

    after = _answers(client, lic, admin_key)
    for name, answer in after.items():
        assert _kid(answer["token"]) == new_kid, name
        assert _claims(answer["key_certificate"])["sub"] == new_kid, name
        check_trust_material(answer, root, issuer=settings.issuer)
        # The certificate carried before the rotation does not admit the new key's tokens.
        stale = {**answer, "key_certificate": before[name]["key_certificate"]}
        with pytest.raises(AssertionError, match="another key"):
            check_trust_material(stale, root, issuer=settings.issuer)

    revoked = client.post(f"/api/v1/keys/{signing_key}/revoke", headers=bearer(admin_key))
    assert revoked.status_code == 200, revoked.text
    for name, answer in _answers(client, lic, admin_key).items():
        assert answer["key_revocations"] is not None, name
        assert _claims(answer["key_revocations"])["revoked"] == [signing_key], name
        check_trust_material(answer, root, issuer=settings.issuer)
        # A token of the revoked key, with its own certificate, is refused once the list that
        # came with this answer is known.
        old = {**before[name], "key_revocations": answer["key_revocations"]}
        with pytest.raises(Refused) as refused:
            check_trust_material(old, root, issuer=settings.issuer)
        assert refused.value.name == "UnknownKey", name


@pytest.mark.usefixtures("clean_root_tables")
def test_after_a_root_rotation_the_answers_carry_the_endorsement(
    settings, make_license, admin_key, signing_key
) -> None:
    fresh = msgspec.structs.replace(settings, key_refresh_seconds=0)
    with TestClient(create_app(fresh), raise_server_exceptions=False) as client:
        root = client.get("/.well-known/licentia-root.json").json()
        [old_root] = [k["kid"] for k in root["keys"]]

        async def rotate_root() -> str:
            async with admin_session(settings) as session:
                rotation = await store.rotate_root(
                    session,
                    ("cli", None),
                    parse_kek(settings.key_encryption_key or ""),
                    policy=store.CertificatePolicy.from_settings(settings),
                )
                return rotation.root.kid

        new_root = run(rotate_root())
        lic = make_license()
        for name, answer in _answers(client, lic, admin_key).items():
            [endorsement] = answer["root_endorsements"]
            assert _claims(endorsement, 0)["kid"] == old_root, name
            assert _claims(answer["key_certificate"], 0)["kid"] == new_root, name
            # A product that embeds only the old root follows through the endorsement ...
            check_trust_material(answer, root, issuer=settings.issuer)
            # ... and without it, the new root's certificate is not trusted.
            with pytest.raises(Refused) as refused:
                check_trust_material(
                    {**answer, "root_endorsements": []}, root, issuer=settings.issuer
                )
            assert refused.value.name == "UnknownKey", name


def test_the_offline_response_file_carries_the_trust_material(
    client, settings, make_license, tmp_path: Path, signing_key
) -> None:
    root = client.get("/.well-known/licentia-root.json").json()
    lic = make_license()
    request = {
        "type": "activation_request",
        "version": 1,
        "product": lic.product,
        "fingerprint": "air-gapped-machine",
        "license_key": lic.key,
        "nonce": "offline-nonce-7",
        "created_at": "2026-11-25T10:00:00Z",
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    env = {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_MIGRATION_DATABASE_URL": settings.migration_database_url or "",
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
    }
    result = CliRunner().invoke(main, ["offline", "activate", str(path)], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert _claims(answer["key_certificate"])["sub"] == signing_key
    check_trust_material(answer, root, issuer=settings.issuer)

    # The same file POSTed online: its body is a response file with the same material.
    online = client.post(f"{API}/activate", json=request)
    assert online.status_code == 200, online.text
    assert {m: online.json()[m] for m in TRUST} == {m: answer[m] for m in TRUST}
    check_trust_material(online.json(), root, issuer=settings.issuer)

"""Signing keys in PostgreSQL: states, rotation, JWKS, the keyring, the CLI and the API."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from licentia_verifier import InvalidSignature, UnknownKey, Verifier
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine
from support import TestDatabase, bearer, make_api_key, run

from keys.crypto import KeyDecryptionError, parse_kek
from keys.tokens import TokenSubject, issue_license_token
from server.cli import main
from server.cli_support import admin_session
from server.errors import InvalidTransition
from server.settings import Settings
from server.signing_keys import service as store
from server.signing_keys.keyring import Keyring

ACTOR = ("cli", None)

SUBJECT = TokenSubject(
    license_id=str(uuid.uuid4()),
    organization_id=str(uuid.uuid4()),
    product="local_cli",
    tier="pro",
    features={"plugins": True, "max_projects": 5},
    max_activations=3,
    license_expires_at=None,
)


def _kek(settings: Settings) -> bytes:
    return parse_kek(settings.key_encryption_key or "")


async def _in_admin(settings: Settings, work):
    async with admin_session(settings) as session:
        return await work(session)


def _jwks(settings: Settings) -> dict:
    return run(_in_admin(settings, store.jwks))


async def _sign_with_keyring(settings: Settings, refresh_seconds: float = 30.0) -> tuple:
    engine = create_async_engine(settings.database_url)
    try:
        keyring = Keyring(engine, _kek(settings), refresh_seconds)
        signer = await keyring.signer()
        now = datetime.now(UTC)
        issued = issue_license_token(
            signer, SUBJECT, issuer=settings.issuer, now=now, lifetime=timedelta(days=1)
        )
        return signer.kid, issued.token
    finally:
        await engine.dispose()


def _verifier(settings: Settings) -> Verifier:
    return Verifier.from_jwks(_jwks(settings), product="local_cli", issuer=settings.issuer)


def test_rotation_keeps_old_tokens_verifying_until_revoked(
    settings: Settings, signing_key: str
) -> None:
    old_kid, old_token = run(_sign_with_keyring(settings))
    assert old_kid == signing_key
    info = run(_in_admin(settings, lambda s: store.rotate(s, ACTOR, _kek(settings))))
    assert info.state == "active" and info.kid != old_kid
    new_kid, new_token = run(_sign_with_keyring(settings))
    assert new_kid == info.kid

    verifier = _verifier(settings)
    assert verifier.verify_license(old_token).license_id == SUBJECT.license_id
    assert verifier.verify_license(new_token).license_id == SUBJECT.license_id
    states = {k.kid: k.state for k in run(_in_admin(settings, store.list_keys))}
    assert states == {old_kid: "retired", new_kid: "active"}

    run(_in_admin(settings, lambda s: store.revoke(s, ACTOR, old_kid, _kek(settings))))
    kids = [k["kid"] for k in _jwks(settings)["keys"]]
    assert kids == [new_kid]
    with pytest.raises(UnknownKey):
        _verifier(settings).verify_license(old_token)


def test_scheduled_rotation_publishes_first_and_signs_later(
    settings: Settings, signing_key: str
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    info = run(
        _in_admin(settings, lambda s: store.rotate(s, ACTOR, _kek(settings), activate_at=later))
    )
    assert info.state == "pending"
    assert info.kid in [k["kid"] for k in _jwks(settings)["keys"]]
    kid, _ = run(_sign_with_keyring(settings))
    assert kid == signing_key, "a pending key must not sign before its time"


def test_keyring_notices_a_rotation_by_another_process(
    settings: Settings, signing_key: str
) -> None:
    async def scenario() -> tuple[str, str, str]:
        engine = create_async_engine(settings.database_url)
        try:
            keyring = Keyring(engine, _kek(settings), refresh_seconds=0.5)
            before = (await keyring.signer()).kid
            async with admin_session(settings) as session:  # "another process"
                rotated = await store.rotate(session, ACTOR, _kek(settings))
            cached = (await keyring.signer()).kid
            await asyncio.sleep(0.6)
            after = (await keyring.signer()).kid
            assert rotated.kid == after
            return before, cached, after
        finally:
            await engine.dispose()

    before, cached, after = run(scenario())
    assert before == cached == signing_key
    assert after != before


def test_wrong_kek_never_signs(settings: Settings, signing_key: str) -> None:
    from keys.crypto import new_kek_text

    wrong = Settings(database_url=settings.database_url, key_encryption_key=new_kek_text())
    with pytest.raises(KeyDecryptionError):
        run(_sign_with_keyring(wrong))


def test_database_allows_exactly_one_active_key(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    with (
        psycopg.connect(database.owner_url) as conn,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        conn.execute(
            "INSERT INTO signing_keys (kid, state, public_key, encrypted_private_key) "
            "VALUES ('second', 'active', '\\x00', '\\x00')"
        )


def test_invalid_transitions(settings: Settings, signing_key: str) -> None:
    with pytest.raises(InvalidTransition):
        run(_in_admin(settings, lambda s: store.retire(s, ACTOR, signing_key)))
    with pytest.raises(InvalidTransition):
        run(_in_admin(settings, lambda s: store.revoke(s, ACTOR, signing_key, _kek(settings))))


def test_private_keys_are_encrypted_at_rest(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    with psycopg.connect(database.owner_url) as conn:
        public, sealed = conn.execute(
            "SELECT public_key, encrypted_private_key FROM signing_keys"
        ).fetchone()
    assert len(bytes(sealed)) >= 12 + 32 + 16  # nonce + key + GCM tag
    signer_kid, token = run(_sign_with_keyring(settings))
    assert signer_kid == signing_key
    tampered = Verifier.from_jwks(
        {
            "keys": [
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "kid": signing_key,
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                }
            ]
        },
        product="local_cli",
        issuer=settings.issuer,
    )
    with pytest.raises(InvalidSignature):
        tampered.verify_license(token)
    assert bytes(public) != bytes(sealed)


def _cli_env(settings: Settings) -> dict[str, str]:
    return {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
        "LICENTIA_LOG_LEVEL": "WARNING",
    }


def test_keys_cli(settings: Settings, signing_key: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _cli_env(settings)
    listed = runner.invoke(main, ["keys", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert signing_key in listed.output and "active" in listed.output

    rotated = runner.invoke(main, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output
    new_kid = rotated.output.split()[0]

    out = tmp_path / "jwks.json"
    exported = runner.invoke(main, ["keys", "export", "--output", str(out)], env=env)
    assert exported.exit_code == 0, exported.output
    document = json.loads(out.read_text())
    assert {k["kid"] for k in document["keys"]} == {signing_key, new_kid}
    assert all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in document["keys"])

    revoked = runner.invoke(main, ["keys", "revoke", "--", signing_key], env=env)
    assert revoked.exit_code == 0, revoked.output
    refused = runner.invoke(main, ["keys", "revoke", "--", new_kid], env=env)
    assert refused.exit_code != 0 and "KEY_ACTIVE" in refused.output


def test_keys_api_and_public_jwks(client: TestClient, settings: Settings, signing_key: str) -> None:
    jwks = client.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    assert "max-age" in jwks.headers["cache-control"]
    assert [k["kid"] for k in jwks.json()["keys"]] == [signing_key]

    no_scope = make_api_key(settings, ["licenses:read"])
    assert client.get("/api/v1/keys", headers=bearer(no_scope)).status_code == 403
    assert client.post("/api/v1/keys/rotate", headers=bearer(no_scope)).status_code == 403

    admin = make_api_key(settings, ["keys:write"])
    rotated = client.post("/api/v1/keys/rotate", headers=bearer(admin))
    assert rotated.status_code == 201, rotated.text
    body = rotated.json()
    assert body["state"] == "active"
    assert not any("private" in field for field in body)
    listed = client.get("/api/v1/keys", headers=bearer(admin)).json()
    assert {k["kid"]: k["state"] for k in listed} == {signing_key: "retired", body["kid"]: "active"}
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    pending = client.post("/api/v1/keys/rotate", json={"activate_at": later}, headers=bearer(admin))
    assert pending.json()["state"] == "pending"
    bad = client.post("/api/v1/keys/rotate", json={"activate_at": "soon"}, headers=bearer(admin))
    assert bad.status_code == 422

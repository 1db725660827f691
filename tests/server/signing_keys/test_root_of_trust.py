"""The root of trust on a real database: the root is made with the first signing key, every
key is certified when it is made, revocations are root-signed lists with increasing seq, the
root rotates with an endorsement, the keyring hands out the trust material without a query,
and the public documents carry it all. Checked with PyJWT only (a generic JOSE library)."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg
import pytest
from litestar.testing import TestClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine
from support import TestDatabase, bearer, run

from keys.crypto import SigningKey, parse_kek
from keys.tokens import TokenSubject, issue_license_token
from server.cli_support import admin_session
from server.errors import Conflict, InvalidTransition
from server.settings import Settings
from server.signing_keys import service as store
from server.signing_keys.keyring import Keyring, Trust
from server.signing_keys.schemas import SigningKeyRead

ACTOR = ("cli", None)
PRODUCT = "local_cli"

SUBJECT = TokenSubject(
    license_id=str(uuid.uuid4()),
    organization_id=str(uuid.uuid4()),
    product=PRODUCT,
    tier="pro",
    features={},
    max_activations=1,
    license_expires_at=None,
)


def _kek(settings: Settings) -> bytes:
    return parse_kek(settings.key_encryption_key or "")


def _policy(settings: Settings) -> store.CertificatePolicy:
    return store.CertificatePolicy.from_settings(settings)


def _admin(settings: Settings, work) -> Any:
    async def main() -> Any:
        async with admin_session(settings) as session:
            return await work(session)

    return run(main())


def _rotate(settings: Settings, **kwargs: Any) -> SigningKeyRead:
    return _admin(
        settings,
        lambda s: store.rotate(s, ACTOR, _kek(settings), policy=_policy(settings), **kwargs),
    )


def _revoke(settings: Settings, kid: str, **kwargs: Any) -> SigningKeyRead:
    return _admin(
        settings,
        lambda s: store.revoke(s, ACTOR, kid, _kek(settings), policy=_policy(settings), **kwargs),
    )


def _root_doc(settings: Settings) -> dict:
    return _admin(settings, store.root_document)


def _cert_doc(settings: Settings) -> dict:
    return _admin(settings, store.certificates_document)


def _roots(document: dict) -> dict[str, Any]:
    return {k["kid"]: jwt.PyJWK(k).key for k in document["keys"]}


def _header(token: str) -> dict:
    return jwt.get_unverified_header(token)


def _decode(token: str, key: Any) -> dict:
    """Signature only: the window is checked against a token's iat, not against now."""
    return jwt.decode(
        token, key, algorithms=["EdDSA"], options={"verify_exp": False, "verify_nbf": False}
    )


def _certificate_claims(certificate: str, roots: dict[str, Any]) -> dict:
    header = _header(certificate)
    assert header == {"alg": "EdDSA", "kid": header["kid"], "typ": "key+jwt"}
    return _decode(certificate, roots[header["kid"]])


def verify_with_root(
    token: str,
    root_document: dict,
    certificates: list[str],
    revocations: str | None,
    *,
    issuer: str,
) -> dict:
    """docs/token-format.md "Root of trust", step by step, with PyJWT: the roots (grown by
    endorsements), the certified keys, the revocation list, then the token."""
    roots = _roots(root_document)
    for endorsement in root_document.get("root_endorsements", []):
        header = _header(endorsement)
        assert header["typ"] == "root+jwt"
        if header["kid"] in roots:
            claims = _decode(endorsement, roots[header["kid"]])
            assert claims["iss"] == issuer and claims["sub"] == claims["jwk"]["kid"]
            roots[claims["sub"]] = jwt.PyJWK(claims["jwk"]).key
    revoked: set[str] = set()
    if revocations is not None:
        header = _header(revocations)
        assert header["typ"] == "key-revocations+jwt"
        claims = _decode(revocations, roots[header["kid"]])
        assert claims["iss"] == issuer
        revoked = set(claims["revoked"])
    keys: dict[str, list[tuple[int, int, Any]]] = {}
    for certificate in certificates:
        claims = _certificate_claims(certificate, roots)
        assert claims["iss"] == issuer and claims["sub"] == claims["jwk"]["kid"]
        keys.setdefault(claims["sub"], []).append(
            (claims["nbf"], claims["exp"], jwt.PyJWK(claims["jwk"]).key)
        )
    kid = _header(token)["kid"]
    if kid in revoked:
        raise LookupError(f"{kid} is revoked")
    unverified = jwt.decode(token, options={"verify_signature": False})
    for nbf, exp, key in keys.get(kid, []):
        if nbf <= unverified["iat"] <= exp:
            return jwt.decode(token, key, algorithms=["EdDSA"], audience=PRODUCT, issuer=issuer)
    raise LookupError(f"no certificate of {kid} covers iat {unverified['iat']}")


async def _keyring_token(settings: Settings, keyring: Keyring | None = None) -> tuple[str, Trust]:
    engine = create_async_engine(settings.database_url)
    try:
        keyring = keyring or Keyring(engine, _kek(settings))
        signer, trust = await keyring.signer_and_trust()
        issued = issue_license_token(
            signer,
            SUBJECT,
            issuer=settings.issuer,
            now=datetime.now(UTC),
            lifetime=timedelta(days=1),
        )
        assert trust.kid == signer.kid
        return issued.token, trust
    finally:
        await engine.dispose()


def test_first_start_makes_a_root_and_certifies_the_signing_key(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    root_document = _root_doc(settings)
    assert len(root_document["keys"]) == 1 and root_document["root_endorsements"] == []
    root_jwk = root_document["keys"][0]
    assert set(root_jwk) == {"kty", "crv", "x", "kid", "use", "alg"}

    certificates = _cert_doc(settings)
    assert certificates["key_revocations"] is None
    assert len(certificates["certificates"]) == 1
    claims = _certificate_claims(certificates["certificates"][0], _roots(root_document))
    jwks = _admin(settings, store.jwks)
    with psycopg.connect(database.owner_url) as conn:
        [sealed] = conn.execute("SELECT encrypted_private_key FROM root_keys").fetchone()
        key_created = conn.execute(
            "SELECT created_at FROM signing_keys WHERE kid = %s", (signing_key,)
        ).fetchone()[0]
    assert claims["sub"] == signing_key
    assert claims["jwk"] == jwks["keys"][0]
    assert claims["iss"] == settings.issuer
    assert claims["nbf"] == math.floor((key_created - timedelta(minutes=5)).timestamp())
    assert claims["exp"] == claims["iat"] + settings.key_certificate_days * 86400
    assert bytes(sealed) and len(bytes(sealed)) >= 12 + 32 + 16  # encrypted under the KEK

    token, trust = run(_keyring_token(settings))
    assert trust.key_certificate == certificates["certificates"][0]
    assert trust.key_revocations is None and trust.root_endorsements == ()
    verified = verify_with_root(
        token, root_document, [trust.key_certificate], None, issuer=settings.issuer
    )
    assert verified["aud"] == PRODUCT


def test_rotation_now_certifies_the_new_key_and_the_keyring_hands_it_out(
    settings: Settings, signing_key: str
) -> None:
    info = _rotate(settings)
    assert info.state == "active"
    token, trust = run(_keyring_token(settings))
    assert trust.kid == info.kid
    assert (
        _certificate_claims(trust.key_certificate, _roots(_root_doc(settings)))["sub"] == info.kid
    )
    documents = _cert_doc(settings)
    subjects = [
        jwt.decode(c, options={"verify_signature": False})["sub"] for c in documents["certificates"]
    ]
    assert subjects == [signing_key, info.kid]
    verify_with_root(
        token, _root_doc(settings), documents["certificates"], None, issuer=settings.issuer
    )


def test_scheduled_rotation_certifies_at_once_and_signs_later(
    settings: Settings, signing_key: str
) -> None:
    async def scenario() -> tuple[Trust, Trust, Trust, str]:
        engine = create_async_engine(settings.database_url)
        try:
            keyring = Keyring(engine, _kek(settings), refresh_seconds=30)
            before = await keyring.trust()
            async with admin_session(settings) as session:
                info = await store.rotate(
                    session,
                    ACTOR,
                    _kek(settings),
                    activate_at=datetime.now(UTC) + timedelta(seconds=1.5),
                    policy=_policy(settings),
                )
            assert info.state == "pending"
            keyring.invalidate()
            still = await keyring.trust()
            await asyncio.sleep(1.6)
            after = await keyring.trust()  # the scheduled time passed: reloaded at once
            return before, still, after, info.kid
        finally:
            await engine.dispose()

    before, still, after, new_kid = run(scenario())
    assert before.kid == still.kid == signing_key
    assert after.kid == new_kid and after.key_certificate
    claims = _certificate_claims(after.key_certificate, _roots(_root_doc(settings)))
    assert claims["sub"] == new_kid


def test_revocations_are_root_signed_lists_with_increasing_seq(
    settings: Settings, signing_key: str
) -> None:
    first = _rotate(settings)
    second = _rotate(settings)
    roots = _roots(_root_doc(settings))
    _revoke(settings, signing_key)
    one = _cert_doc(settings)["key_revocations"]
    _revoke(settings, first.kid)
    two = _cert_doc(settings)["key_revocations"]
    [root_kid] = roots
    for token in (one, two):
        assert _header(token) == {"alg": "EdDSA", "kid": root_kid, "typ": "key-revocations+jwt"}
    claims_one, claims_two = _decode(one, roots[root_kid]), _decode(two, roots[root_kid])
    assert set(claims_one) == {"iss", "iat", "seq", "revoked"}
    assert (claims_one["seq"], claims_one["revoked"]) == (1, [signing_key])
    assert (claims_two["seq"], claims_two["revoked"]) == (2, [signing_key, first.kid])
    # Only published keys' certificates are listed; the revoked ones are gone.
    subjects = [
        jwt.decode(c, options={"verify_signature": False})["sub"]
        for c in _cert_doc(settings)["certificates"]
    ]
    assert subjects == [second.kid]

    token, trust = run(_keyring_token(settings))
    assert trust.key_revocations == two
    with pytest.raises(InvalidTransition):
        _revoke(settings, signing_key)
    with pytest.raises(InvalidTransition):
        _revoke(settings, second.kid)  # the active key


def test_a_token_of_a_revoked_key_is_refused_by_the_root_path(
    settings: Settings, signing_key: str
) -> None:
    old_token, old_trust = run(_keyring_token(settings))
    _rotate(settings)
    _revoke(settings, signing_key)
    documents = _cert_doc(settings)
    with pytest.raises(LookupError, match="revoked"):
        verify_with_root(
            old_token,
            _root_doc(settings),
            [old_trust.key_certificate, *documents["certificates"]],
            documents["key_revocations"],
            issuer=settings.issuer,
        )


def test_root_rotation_is_endorsed_by_the_old_root_and_recertifies(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    pending = _rotate(settings, activate_at=datetime.now(UTC) + timedelta(days=1))
    active_kid = _rotate(settings).kid
    states = {k.kid: k.state for k in _admin(settings, store.list_keys)}
    assert states == {signing_key: "retired", pending.kid: "pending", active_kid: "active"}
    doomed = signing_key
    _revoke(settings, doomed)
    old_document = _root_doc(settings)
    [old_root] = _roots(old_document)
    old_list = _decode(_cert_doc(settings)["key_revocations"], _roots(old_document)[old_root])
    old_token, _ = run(_keyring_token(settings))

    rotation = _admin(
        settings, lambda s: store.rotate_root(s, ACTOR, _kek(settings), policy=_policy(settings))
    )
    new_root = rotation.root.kid
    assert rotation.private_key is None and rotation.root.endorsed_by == old_root

    document = _root_doc(settings)
    assert [k["kid"] for k in document["keys"]] == [old_root, new_root]
    [endorsement] = document["root_endorsements"]
    assert _header(endorsement) == {"alg": "EdDSA", "kid": old_root, "typ": "root+jwt"}
    claims = _decode(endorsement, _roots(old_document)[old_root])
    assert claims == {
        "iss": settings.issuer,
        "sub": new_root,
        "jwk": document["keys"][1],
        "iat": claims["iat"],
    }

    certificates = _cert_doc(settings)
    subjects = []
    for certificate in certificates["certificates"]:
        assert _header(certificate)["kid"] == new_root
        subjects.append(_certificate_claims(certificate, _roots(document))["sub"])
    assert sorted(subjects) == sorted([pending.kid, active_kid])
    new_list = _decode(certificates["key_revocations"], _roots(document)[new_root])
    assert new_list["seq"] == old_list["seq"] + 1 and new_list["revoked"] == [doomed]
    assert _header(certificates["key_revocations"])["kid"] == new_root

    # A product that embeds only the old root follows through the endorsement; a token
    # signed before the rotation still verifies with the new certificate.
    verify_with_root(
        old_token,
        old_document | {"root_endorsements": document["root_endorsements"]},
        certificates["certificates"],
        certificates["key_revocations"],
        issuer=settings.issuer,
    )
    _, trust = run(_keyring_token(settings))
    assert trust.root_endorsements == (endorsement,)
    assert _header(trust.key_certificate)["kid"] == new_root

    with psycopg.connect(database.owner_url) as conn:
        rows = dict(conn.execute("SELECT kid, encrypted_private_key IS NOT NULL FROM root_keys"))
    assert rows == {old_root: False, new_root: True}, "a superseded root signs nothing"

    with pytest.raises(InvalidTransition):
        _admin(settings, lambda s: store.retire_root(s, ACTOR, new_root))
    _admin(settings, lambda s: store.retire_root(s, ACTOR, old_root))
    document = _root_doc(settings)
    assert [k["kid"] for k in document["keys"]] == [new_root]
    assert document["root_endorsements"] == [endorsement]


def test_ensure_certifies_keys_of_an_upgraded_deployment_and_renews(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("TRUNCATE root_keys, key_certificates, key_revocation_lists CASCADE")
    assert run(_keyring_token(settings))[1].key_certificate is None

    def count() -> int:
        with psycopg.connect(database.owner_url) as conn:
            return conn.execute("SELECT count(*) FROM key_certificates").fetchone()[0]

    short = store.CertificatePolicy(issuer=settings.issuer, certificate_days=30)
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), short))
    [first] = _cert_doc(settings)["certificates"]
    assert count() == 1
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), short))
    [second] = _cert_doc(settings)["certificates"]
    assert count() == 2, "a certificate ending within 90 days is renewed"
    long = store.CertificatePolicy(issuer=settings.issuer, certificate_days=1000)
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), long))
    [third] = _cert_doc(settings)["certificates"]
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), long))
    assert count() == 3 and _cert_doc(settings)["certificates"] == [third]
    roots = _roots(_root_doc(settings))
    nbf = [_certificate_claims(c, roots)["nbf"] for c in (first, second, third)]
    assert len(set(nbf)) == 1, "the window always starts at the key's creation"


def test_a_start_with_another_issuer_certifies_the_keys_again_for_it(
    settings: Settings, signing_key: str
) -> None:
    """The first start made the certificates for the default issuer; the vendor then sets
    LICENTIA_ISSUER (as `serve` warns them to) and starts again. Tokens now carry the new
    ``iss``, so the certificates must too, or every product that embeds the root refuses
    them (``WrongIssuer``)."""
    roots = _roots(_root_doc(settings))
    [before] = _cert_doc(settings)["certificates"]
    assert _certificate_claims(before, roots)["iss"] == settings.issuer
    chosen = store.CertificatePolicy(
        issuer="https://licensing.example.com", certificate_days=settings.key_certificate_days
    )
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), chosen))
    [after] = _cert_doc(settings)["certificates"]
    claims = _certificate_claims(after, roots)
    assert claims["iss"] == "https://licensing.example.com" and claims["sub"] == signing_key
    assert claims["nbf"] == _certificate_claims(before, roots)["nbf"]
    _admin(settings, lambda s: store.ensure_active_key(s, _kek(settings), chosen))
    assert _cert_doc(settings)["certificates"] == [after], "certified once for an issuer"


def test_keyring_trust_costs_no_query_while_fresh(settings: Settings, signing_key: str) -> None:
    async def scenario() -> list[str]:
        engine = create_async_engine(settings.database_url)
        statements: list[str] = []
        event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda *args: statements.append(args[2]),
        )
        try:
            keyring = Keyring(engine, _kek(settings), refresh_seconds=60)
            first = await keyring.trust()
            loaded = len(statements)
            for _ in range(50):
                assert await keyring.trust() is first
                signer, trust = await keyring.signer_and_trust()
                assert trust is first and signer.kid == first.kid
            assert len(statements) == loaded
            return statements
        finally:
            await engine.dispose()

    statements = run(scenario())
    assert statements, "the first call loads"


def test_trust_is_frozen(settings: Settings, signing_key: str) -> None:
    _, trust = run(_keyring_token(settings))
    with pytest.raises(AttributeError):
        trust.key_certificate = "x"  # type: ignore[misc]


def test_public_documents(client: TestClient, settings: Settings, signing_key: str) -> None:
    root = client.get("/.well-known/licentia-root.json")
    assert root.status_code == 200 and "max-age" in root.headers["cache-control"]
    assert root.json() == _root_doc(settings)
    certificates = client.get("/.well-known/key-certificates.json")
    assert certificates.status_code == 200 and "max-age" in certificates.headers["cache-control"]
    body = certificates.json()
    assert set(body) == {"certificates", "key_revocations", "root_endorsements"}
    assert len(body["certificates"]) == 1 and body["key_revocations"] is None
    assert all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in root.json()["keys"])


def test_api_revoke_issues_a_list_and_reaches_the_keyring(
    client: TestClient, admin_key: str, settings: Settings, signing_key: str
) -> None:
    rotated = client.post("/api/v1/keys/rotate", headers=bearer(admin_key))
    assert rotated.status_code == 201, rotated.text
    revoked = client.post(f"/api/v1/keys/{signing_key}/revoke", headers=bearer(admin_key))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    again = client.post(f"/api/v1/keys/{signing_key}/revoke", headers=bearer(admin_key))
    assert again.status_code == 409 and again.json()["code"] == "KEY_STATE"
    missing = client.post("/api/v1/keys/nope/revoke", headers=bearer(admin_key))
    assert missing.status_code == 404
    listed = client.get("/.well-known/key-certificates.json").json()["key_revocations"]
    assert jwt.decode(listed, options={"verify_signature": False})["revoked"] == [signing_key]
    keyring: Keyring = client.app.state.keyring
    with client.portal() as portal:
        assert portal.call(keyring.trust).key_revocations == listed


def test_a_root_key_from_another_deployment_is_refused(
    settings: Settings, signing_key: str
) -> None:
    from keys.crypto import compute_kid, generate_private_key, raw_private_key, raw_public_key

    private = generate_private_key()
    stranger = SigningKey.from_raw(compute_kid(raw_public_key(private)), raw_private_key(private))
    with pytest.raises(Conflict) as info:
        _rotate(settings, root_key=stranger)
    assert info.value.code == "ROOT_MISMATCH"


def test_ensure_with_a_wrong_kek_leaves_the_refusal_to_the_startup_check(
    settings: Settings, signing_key: str, database: TestDatabase
) -> None:
    from keys.crypto import new_kek_text

    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute("DELETE FROM key_certificates")
    wrong = parse_kek(new_kek_text())
    assert _admin(settings, lambda s: store.ensure_active_key(s, wrong)) is None
    assert _cert_doc(settings)["certificates"] == []

"""Key certificates, root endorsements and revocation lists encode exactly as
docs/token-format.md ("Root of trust") specifies, and verify with a generic JOSE library
(PyJWT) under the root only."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.certificates import (
    KEY_CERTIFICATE_TYP,
    KEY_REVOCATIONS_TYP,
    ROOT_ENDORSEMENT_TYP,
    issue_key_certificate,
    issue_key_revocations,
    issue_root_endorsement,
)
from keys.crypto import (
    SigningKey,
    compute_kid,
    generate_private_key,
    private_key_file,
    raw_private_key,
    raw_public_key,
    read_private_key_file,
)

ISSUER = "https://licensing.example.com"
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


def _key() -> tuple[SigningKey, Ed25519PrivateKey]:
    private = generate_private_key()
    return SigningKey.from_raw(
        compute_kid(raw_public_key(private)), raw_private_key(private)
    ), private


@pytest.fixture
def root() -> tuple[SigningKey, Ed25519PrivateKey]:
    return _key()


@pytest.fixture
def signing() -> SigningKey:
    return _key()[0]


def _header(token: str) -> dict:
    segment = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _certificate(root: SigningKey, signing: SigningKey, **changes) -> str:
    arguments = {
        "issuer": ISSUER,
        "now": NOW,
        "not_before": NOW - timedelta(minutes=5),
        "expires_at": NOW + timedelta(days=1826),
    }
    arguments.update(changes)
    return issue_key_certificate(root, signing.public_jwk(), **arguments)


def test_key_certificate_header_and_claims_exactly(root, signing):
    root_key, root_private = root
    token = _certificate(root_key, signing)
    assert _header(token) == {"alg": "EdDSA", "kid": root_key.kid, "typ": "key+jwt"}
    assert (
        token.split(".")[0]
        == base64.urlsafe_b64encode(
            json.dumps(_header(token), separators=(",", ":"), sort_keys=True).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    claims = jwt.decode(token, root_private.public_key(), algorithms=["EdDSA"])
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": ISSUER,
        "sub": signing.kid,
        "jwk": signing.public_jwk(),
        "iat": iat,
        "nbf": iat - 300,
        "exp": iat + 1826 * 86400,
    }
    assert set(claims["jwk"]) == {"kty", "crv", "x", "kid", "use", "alg"}
    assert KEY_CERTIFICATE_TYP == "key+jwt"


def test_root_endorsement_header_and_claims_exactly(root):
    old_root, old_private = root
    new_root = _key()[0]
    token = issue_root_endorsement(old_root, new_root.public_jwk(), issuer=ISSUER, now=NOW)
    assert _header(token) == {"alg": "EdDSA", "kid": old_root.kid, "typ": "root+jwt"}
    claims = jwt.decode(token, old_private.public_key(), algorithms=["EdDSA"])
    assert claims == {
        "iss": ISSUER,
        "sub": new_root.kid,
        "jwk": new_root.public_jwk(),
        "iat": int(NOW.timestamp()),
    }
    assert ROOT_ENDORSEMENT_TYP == "root+jwt"
    with pytest.raises(ValueError):
        issue_root_endorsement(old_root, old_root.public_jwk(), issuer=ISSUER, now=NOW)


def test_revocation_list_header_and_claims_exactly(root):
    root_key, root_private = root
    token = issue_key_revocations(root_key, issuer=ISSUER, now=NOW, seq=3, revoked=["a", "b"])
    assert _header(token) == {"alg": "EdDSA", "kid": root_key.kid, "typ": "key-revocations+jwt"}
    claims = jwt.decode(token, root_private.public_key(), algorithms=["EdDSA"])
    assert claims == {"iss": ISSUER, "iat": int(NOW.timestamp()), "seq": 3, "revoked": ["a", "b"]}
    assert KEY_REVOCATIONS_TYP == "key-revocations+jwt"


@pytest.mark.parametrize("seq", [0, -1, True, 1.0, "2"])
def test_revocation_seq_is_a_positive_integer(root, seq):
    with pytest.raises(ValueError):
        issue_key_revocations(root[0], issuer=ISSUER, now=NOW, seq=seq, revoked=[])


def test_revocation_list_refuses_duplicates_and_empty_kids(root):
    for revoked in (["a", "a"], [""]):
        with pytest.raises(ValueError):
            issue_key_revocations(root[0], issuer=ISSUER, now=NOW, seq=1, revoked=revoked)


def test_certificate_refuses_private_members_other_keys_and_empty_windows(root, signing):
    root_key = root[0]
    with pytest.raises(ValueError):
        issue_key_certificate(
            root_key,
            {**signing.public_jwk(), "d": "secret"},
            issuer=ISSUER,
            now=NOW,
            not_before=NOW,
            expires_at=NOW + timedelta(days=1),
        )
    with pytest.raises(ValueError):
        issue_key_certificate(
            root_key,
            {**signing.public_jwk(), "crv": "X25519"},
            issuer=ISSUER,
            now=NOW,
            not_before=NOW,
            expires_at=NOW + timedelta(days=1),
        )
    with pytest.raises(ValueError):
        _certificate(root_key, signing, expires_at=NOW - timedelta(minutes=5))
    with pytest.raises(ValueError):
        _certificate(root_key, signing, now=NOW.replace(tzinfo=None))


def test_certificate_does_not_verify_under_another_root_or_the_signing_key(root, signing):
    token = _certificate(root[0], signing)
    other = _key()[1]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["EdDSA"])


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=5))
def test_a_tampered_certificate_fails_to_verify(position, bit):
    """Flip one base64url character anywhere in the header, payload or signature: PyJWT
    refuses the result under the root (or cannot even parse it)."""
    root_key, root_private = _key()
    signing = _key()[0]
    token = _certificate(root_key, signing)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    indexes = [i for i, c in enumerate(token) if c != "."]
    index = indexes[position % len(indexes)]
    replacement = alphabet[alphabet.index(token[index]) ^ (1 << bit)]
    tampered = token[:index] + replacement + token[index + 1 :]
    if tampered == token:
        return
    try:
        claims = jwt.decode(tampered, root_private.public_key(), algorithms=["EdDSA"])
    except jwt.PyJWTError:
        return
    # Only a change in the unused low bits of a segment's last character decodes to the
    # same bytes; then the claims are exactly the original ones.
    assert claims == jwt.decode(token, root_private.public_key(), algorithms=["EdDSA"])


def test_a_certificate_with_a_swapped_jwk_fails(root, signing):
    """Splicing another key into a genuine certificate breaks the signature."""
    root_key, root_private = root
    token = _certificate(root_key, signing)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["jwk"] = _key()[0].public_jwk() | {"kid": signing.kid}
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            f"{header}.{forged}.{signature}", root_private.public_key(), algorithms=["EdDSA"]
        )


def test_private_key_file_round_trip_and_checks():
    private = generate_private_key()
    raw = raw_private_key(private)
    document = private_key_file(raw)
    assert set(document) == {"kty", "crv", "x", "d", "kid"}
    assert document["kid"] == compute_kid(raw_public_key(private))
    assert read_private_key_file(document) == (document["kid"], raw)
    other = private_key_file(raw_private_key(generate_private_key()))
    for broken in (
        [],
        {**document, "kty": "RSA"},
        {**document, "x": other["x"]},
        {**document, "kid": other["kid"]},
        {**document, "d": "not base64!"},
        {**document, "d": document["d"][:20]},
        {k: v for k, v in document.items() if k != "d"},
    ):
        with pytest.raises(ValueError) as info:
            read_private_key_file(broken)
        assert document["d"] not in str(info.value)

"""keys.tokens: the claims the server puts in license and activation tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from keys.crypto import (
    SigningKey,
    compute_kid,
    generate_private_key,
    raw_private_key,
    raw_public_key,
)
from keys.tokens import (
    ACTIVATION_TYP,
    LICENSE_TYP,
    TokenSubject,
    decode_id,
    encode_id,
    fingerprint_hash,
    issue_activation_token,
    issue_license_token,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
ISSUER = "https://licensing.example.com"


@pytest.fixture(scope="module")
def signer() -> SigningKey:
    key = generate_private_key()
    return SigningKey.from_raw(compute_kid(raw_public_key(key)), raw_private_key(key))


def subject(**overrides) -> TokenSubject:
    values = {
        "license_id": str(uuid.uuid4()),
        "organization_id": str(uuid.uuid4()),
        "product": "acme-ide",
        "tier": "pro",
        "features": {"sso": True, "seats": 25, "export": True},
        "max_activations": 3,
        "license_expires_at": datetime(2027, 1, 1, tzinfo=UTC),
    }
    values.update(overrides)
    return TokenSubject(**values)


def b64id(value: str | uuid.UUID) -> str:
    """The id claim for a UUID, computed independently of keys.tokens."""
    raw = (value if isinstance(value, uuid.UUID) else uuid.UUID(value)).bytes
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict]:
    def seg(s: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))

    header, payload, _ = token.split(".")
    return seg(header), seg(payload)


def test_fingerprint_hash_is_base64url_sha256():
    expected = base64.urlsafe_b64encode(hashlib.sha256("héllo".encode()).digest()).rstrip(b"=")
    assert fingerprint_hash("héllo") == expected.decode()
    assert len(fingerprint_hash("x")) == 43


def test_license_token_claims(signer):
    sub = subject()
    issued = issue_license_token(
        signer, sub, issuer=ISSUER, now=NOW, lifetime=timedelta(hours=1), nonce="abc"
    )
    header, claims = parts(issued.token)
    assert header == {"alg": "EdDSA", "kid": signer.kid, "typ": LICENSE_TYP}
    iat = int(NOW.timestamp())
    assert claims == {
        "iss": ISSUER,
        "sub": b64id(sub.license_id),
        "aud": "acme-ide",
        "iat": iat,
        "nbf": iat,
        "exp": iat + 3600,
        "jti": issued.jti,
        "org": b64id(sub.organization_id),
        "tier": "pro",
        "features": {"sso": True, "seats": 25, "export": True},
        "max_activations": 3,
        "license_expires_at": int(datetime(2027, 1, 1, tzinfo=UTC).timestamp()),
        "nonce": "abc",
    }
    assert issued.expires_at == datetime.fromtimestamp(iat + 3600, UTC)
    assert len(issued.jti) == 16 and len(base64.urlsafe_b64decode(issued.jti)) == 12
    assert len(claims["sub"]) == len(claims["org"]) == 22
    no_nonce = issue_license_token(signer, sub, issuer=ISSUER, now=NOW, lifetime=timedelta(1))
    assert "nonce" not in parts(no_nonce.token)[1]
    assert no_nonce.jti != issued.jti


def test_activation_token_lease_is_capped_by_license_expiry(signer):
    sub = subject(license_expires_at=NOW + timedelta(days=3))
    act = str(uuid.uuid4())
    issued = issue_activation_token(
        signer,
        sub,
        issuer=ISSUER,
        activation_id=act,
        fingerprint="fp-raw",
        now=NOW,
        lease=timedelta(days=14),
    )
    header, claims = parts(issued.token)
    assert header["typ"] == ACTIVATION_TYP
    assert claims["exp"] == claims["license_expires_at"] == int((NOW + timedelta(3)).timestamp())
    assert claims["act"] == b64id(act) and claims["fp"] == fingerprint_hash("fp-raw")
    assert "fp-raw" not in issued.token and "fp-raw" not in json.dumps(claims)
    perpetual = issue_activation_token(
        signer,
        subject(license_expires_at=None),
        issuer=ISSUER,
        activation_id=uuid.uuid4(),
        fingerprint="f",
        now=NOW,
        lease=timedelta(days=14),
    )
    claims = parts(perpetual.token)[1]
    assert claims["license_expires_at"] is None
    assert claims["exp"] == int(NOW.timestamp()) + 14 * 86400


def test_tokens_verify_with_pyjwt(signer):
    issued = issue_license_token(
        signer, subject(), issuer=ISSUER, now=datetime.now(UTC), lifetime=timedelta(hours=1)
    )
    key = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": signer.public_jwk()["x"]}).key
    claims = jwt.decode(issued.token, key, algorithms=["EdDSA"], audience="acme-ide", issuer=ISSUER)
    assert claims["tier"] == "pro"


def test_typical_activation_token_size(signer):
    issued = issue_activation_token(
        signer,
        subject(),
        issuer=ISSUER,
        activation_id=str(uuid.uuid4()),
        fingerprint="f" * 43,
        now=NOW,
        lease=timedelta(days=14),
    )
    # Three UUIDs as 22-character ids, a 16-character kid, a 43-character fp and a
    # 16-character jti; see docs/token-format.md, "Size".
    assert len(signer.kid) == 16
    assert len(issued.token) < 700


@pytest.mark.parametrize(
    "change",
    [
        {"license_expires_at": NOW - timedelta(seconds=1)},
        {"features": {"x": float("nan")}},
        {"features": {"x": None}},
        {"features": {"x": [1]}},
        {"max_activations": True},
    ],
)
def test_invalid_subjects_are_refused(signer, change):
    with pytest.raises(ValueError):
        issue_license_token(
            signer, subject(**change), issuer=ISSUER, now=NOW, lifetime=timedelta(hours=1)
        )


def test_naive_datetimes_and_empty_fingerprints_are_refused(signer):
    with pytest.raises(ValueError):
        issue_license_token(
            signer, subject(), issuer=ISSUER, now=NOW.replace(tzinfo=None), lifetime=timedelta(1)
        )
    with pytest.raises(ValueError):
        issue_activation_token(
            signer,
            subject(),
            issuer=ISSUER,
            activation_id=uuid.uuid4(),
            fingerprint="",
            now=NOW,
            lease=timedelta(1),
        )


def test_id_encoding_is_the_uuid_bytes_in_base64url():
    # The example of docs/token-format.md, "Identifiers".
    assert encode_id("5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11") == "XwxvHo9OTQqaQ1t8Hw4tEQ"
    assert decode_id("XwxvHo9OTQqaQ1t8Hw4tEQ") == "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11"
    for value in (uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)):
        assert encode_id(value) == encode_id(str(value)) == b64id(value)
        assert decode_id(encode_id(value)) == str(value)


@pytest.mark.parametrize(
    "claim",
    [
        "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",  # the text form
        "XwxvHo9OTQqaQ1t8Hw4tER",  # non-zero unused bits in the last character
        "XwxvHo9OTQqaQ1t8Hw4tE",  # 21 characters
        "XwxvHo9OTQqaQ1t8Hw4tEQA",  # 23 characters
        "XwxvHo9OTQqaQ1t8Hw4t+Q",  # standard alphabet
        "XwxvHo9OTQqaQ1t8Hw4tEQ==",  # padded
        "XwxvHo9OTQqaQ1t8Hw4t\u00e9Q",
    ],
)
def test_decode_id_refuses_anything_but_the_canonical_encoding(claim):
    with pytest.raises(ValueError):
        decode_id(claim)


def test_subject_ids_are_uuids_kept_in_canonical_text(signer):
    lic, org, act = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    from_objects = subject(license_id=lic, organization_id=org)
    from_upper = subject(license_id=str(lic).upper(), organization_id=str(org).upper())
    for sub in (from_objects, from_upper):
        assert (sub.license_id, sub.organization_id) == (str(lic), str(org))
    a = issue_activation_token(
        signer,
        from_objects,
        issuer=ISSUER,
        activation_id=act,
        fingerprint="f",
        now=NOW,
        lease=timedelta(days=1),
    )
    b = issue_activation_token(
        signer,
        from_upper,
        issuer=ISSUER,
        activation_id=str(act).upper(),
        fingerprint="f",
        now=NOW,
        lease=timedelta(days=1),
    )
    for token in (a.token, b.token):
        claims = parts(token)[1]
        assert (claims["sub"], claims["org"], claims["act"]) == (b64id(lic), b64id(org), b64id(act))


@pytest.mark.parametrize("bad", ["lic-1", "", "5f0c6f1e-8f4e-4d0a-9a43", 42, None])
def test_ids_that_are_not_uuids_are_refused(signer, bad):
    with pytest.raises(ValueError):
        subject(license_id=bad)
    with pytest.raises(ValueError):
        subject(organization_id=bad)
    with pytest.raises(ValueError):
        issue_activation_token(
            signer,
            subject(),
            issuer=ISSUER,
            activation_id=bad,
            fingerprint="f",
            now=NOW,
            lease=timedelta(days=1),
        )

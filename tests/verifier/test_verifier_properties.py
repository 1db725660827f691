"""Property tests: what keys.tokens issues, licentia_verifier accepts exactly; anything
else is refused with a LicenseError subclass and nothing but."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from licentia_verifier import (
    InvalidSignature,
    LicenseError,
    MalformedToken,
    UnknownKey,
    Verifier,
    WrongTokenType,
)
from support import seeded_signing_key

from keys.crypto import (
    SigningKey,
    generate_private_key,
    raw_private_key,
)
from keys.tokens import TokenSubject, fingerprint_hash, issue_activation_token, issue_license_token

ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


SIGNER = seeded_signing_key(b"property-tests")
JWKS = {"keys": [SIGNER.public_jwk()]}
VERIFIER = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# The server's ids are UUIDs, given as uuid.UUID or as text (in any case).
ids = st.one_of(
    st.uuids(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
)


fingerprints = st.text(min_size=1, max_size=40)


def canonical(value) -> str:
    return str(uuid.UUID(str(value)))


feature_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
subjects = st.builds(
    TokenSubject,
    license_id=ids,
    organization_id=ids,
    product=st.just(PRODUCT),
    tier=st.text(max_size=20),
    features=st.dictionaries(st.text(max_size=12), feature_values, max_size=6),
    max_activations=st.integers(min_value=0, max_value=10**6),
    license_expires_at=st.one_of(
        st.none(),
        st.integers(min_value=1, max_value=10 * 365 * 86400).map(
            lambda s: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s)
        ),
    ),
)
nows = st.integers(min_value=0, max_value=365 * 86400).map(
    lambda s: datetime(2025, 6, 1, tzinfo=UTC) + timedelta(seconds=s)
)
lifetimes = st.integers(min_value=1, max_value=90 * 86400).map(lambda s: timedelta(seconds=s))


def _expected_exp(subject: TokenSubject, now: datetime, lifetime: timedelta) -> int:
    exp = int((now + lifetime).timestamp())
    if subject.license_expires_at is not None:
        exp = min(exp, int(subject.license_expires_at.timestamp()))
    return exp


def _check_round_trip(lic, subject, now, lifetime, issued):
    assert lic.license_id == subject.license_id == canonical(subject.license_id)
    assert lic.organization_id == subject.organization_id == canonical(subject.organization_id)
    assert lic.product == PRODUCT
    assert lic.tier == subject.tier
    assert dict(lic.features) == dict(subject.features)
    for name, value in subject.features.items():
        assert type(lic.features[name]) is type(value)
    assert lic.max_activations == subject.max_activations
    assert lic.issued_at == datetime.fromtimestamp(int(now.timestamp()), UTC)
    assert lic.expires_at == issued.expires_at
    assert int(lic.expires_at.timestamp()) == _expected_exp(subject, now, lifetime)
    if subject.license_expires_at is None:
        assert lic.license_expires_at is None
    else:
        assert lic.license_expires_at == subject.license_expires_at.replace(microsecond=0)
    assert lic.token_id == issued.jti


@FAST
@given(subject=subjects, now=nows, lifetime=lifetimes, nonce=st.one_of(st.none(), st.text()))
def test_issued_license_tokens_are_accepted_and_round_trip(subject, now, lifetime, nonce):
    if subject.license_expires_at is not None and subject.license_expires_at <= now:
        subject = dataclasses.replace(subject, license_expires_at=None)
    issued = issue_license_token(
        SIGNER, subject, issuer=ISSUER, now=now, lifetime=lifetime, nonce=nonce
    )
    lic = VERIFIER.verify_license(issued.token, now=now)
    _check_round_trip(lic, subject, now, lifetime, issued)
    assert lic.nonce == nonce and lic.activation_id is None


@FAST
@given(subject=subjects, now=nows, lease=lifetimes, act=ids, fingerprint=fingerprints)
def test_issued_activation_tokens_are_accepted_and_round_trip(
    subject, now, lease, act, fingerprint
):
    if subject.license_expires_at is not None and subject.license_expires_at <= now:
        subject = dataclasses.replace(subject, license_expires_at=None)
    issued = issue_activation_token(
        SIGNER,
        subject,
        issuer=ISSUER,
        activation_id=act,
        fingerprint=fingerprint,
        now=now,
        lease=lease,
    )
    lic = VERIFIER.verify_activation(issued.token, fingerprint=fingerprint, now=now)
    _check_round_trip(lic, subject, now, lease, issued)
    assert lic.activation_id == canonical(act)
    with pytest.raises(WrongTokenType):
        VERIFIER.verify_license(issued.token, now=now)


NOW = datetime(2026, 3, 1, tzinfo=UTC)
ACT_ID = "7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
SUBJECT = TokenSubject(
    license_id="5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",
    organization_id="0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    product=PRODUCT,
    tier="pro",
    features={"sso": True, "seats": 25},
    max_activations=3,
    license_expires_at=datetime(2027, 1, 1, tzinfo=UTC),
)
ACTIVATION = issue_activation_token(
    SIGNER,
    SUBJECT,
    issuer=ISSUER,
    activation_id=ACT_ID,
    fingerprint="fp-1",
    now=NOW,
    lease=timedelta(days=14),
).token


def _must_refuse(token) -> LicenseError:
    try:
        VERIFIER.verify_activation(token, fingerprint="fp-1", now=NOW)
    except LicenseError as exc:
        return exc
    raise AssertionError(f"accepted a mutated token: {token!r}")


@FAST
@given(position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_single_bit_flip_is_refused(position, bit):
    raw = bytearray(ACTIVATION.encode())
    raw[position % len(raw)] ^= 1 << bit
    _must_refuse(raw.decode("latin-1"))
    _must_refuse(bytes(raw))


@FAST
@given(cut=st.integers(min_value=1, max_value=len(ACTIVATION)), from_end=st.booleans())
def test_any_truncation_is_refused(cut, from_end):
    _must_refuse(ACTIVATION[:-cut] if from_end else ACTIVATION[cut:])


@FAST
@given(
    segment=st.integers(min_value=0, max_value=2),
    style=st.sampled_from(["padded", "standard", "whitespace", "percent"]),
)
def test_re_encodings_are_refused(segment, style):
    parts = ACTIVATION.split(".")
    raw = b64d(parts[segment])
    if style == "padded":
        parts[segment] = base64.urlsafe_b64encode(raw).decode()
        if parts[segment] == ACTIVATION.split(".")[segment]:
            parts[segment] += "===="
    elif style == "standard":
        parts[segment] = base64.b64encode(raw).decode() + "+"
    elif style == "whitespace":
        parts[segment] = parts[segment][:5] + "\n" + parts[segment][5:]
    else:
        parts[segment] = parts[segment][:5] + "%41" + parts[segment][5:]
    _must_refuse(".".join(parts))


def test_re_serialized_json_is_refused():
    header, payload, signature = ACTIVATION.split(".")
    pretty_payload = b64(json.dumps(json.loads(b64d(payload)), indent=1).encode())
    pretty_header = b64(json.dumps(json.loads(b64d(header)), indent=1).encode())
    for token in (
        f"{header}.{pretty_payload}.{signature}",
        f"{pretty_header}.{payload}.{signature}",
    ):
        assert isinstance(_must_refuse(token), InvalidSignature)


@FAST
@given(order=st.permutations([0, 1, 2]))
def test_segment_swaps_are_refused(order):
    parts = ACTIVATION.split(".")
    if list(order) != [0, 1, 2]:
        _must_refuse(".".join(parts[i] for i in order))


header_changes = st.one_of(
    st.fixed_dictionaries({"extra": st.sampled_from(["jku", "x5u", "jwk", "crit", "x5c", "cty"])}),
    st.fixed_dictionaries({"alg": st.sampled_from(["none", "HS256", "RS256", "ES256", "eddsa"])}),
    st.fixed_dictionaries({"typ": st.sampled_from(["JWT", "license+jwt", "at+jwt", ""])}),
    st.fixed_dictionaries({"kid": st.one_of(st.text(max_size=10), st.integers(), st.none())}),
    st.fixed_dictionaries({"drop": st.sampled_from(["alg", "typ", "kid"])}),
)


@FAST
@given(change=header_changes)
def test_header_changes_are_refused(change):
    header_segment, payload, signature = ACTIVATION.split(".")
    header = json.loads(b64d(header_segment))
    if "extra" in change:
        header[change["extra"]] = "https://attacker.example/keys"
    elif "drop" in change:
        del header[change["drop"]]
    else:
        header.update(change)
    _must_refuse(f"{b64(json.dumps(header).encode())}.{payload}.{signature}")


def _payload() -> str:
    return ACTIVATION.split(".")[1]


def _header(alg: str, kid: str | None = None) -> str:
    header = {"alg": alg, "kid": kid or SIGNER.kid, "typ": "activation+jwt"}
    return b64(json.dumps(header, separators=(",", ":")).encode())


def test_algorithm_confusion_is_refused():
    payload = _payload()
    # alg none, with and without a signature.
    for token in (f"{_header('none')}.{payload}.", f"{_header('none')}.{payload}.AAAA"):
        assert type(_must_refuse(token)) in (InvalidSignature, MalformedToken)
    # HS256 with the public key (raw, base64url and the JWK text) as the HMAC secret.
    signing_input = f"{_header('HS256')}.{payload}".encode()
    for secret in (
        SIGNER.public_raw,
        SIGNER.public_jwk()["x"].encode(),
        json.dumps(SIGNER.public_jwk()).encode(),
    ):
        mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
        assert isinstance(_must_refuse(f"{signing_input.decode()}.{b64(mac)}"), InvalidSignature)
    # Real RS256 and ES256 signatures by keys an attacker controls.
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = f"{_header('RS256')}.{payload}".encode()
    sig = rsa_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(_must_refuse(f"{signing_input.decode()}.{b64(sig)}"), InvalidSignature)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        json.loads(b64d(payload)),
        ec_key,
        algorithm="ES256",
        headers={"kid": SIGNER.kid, "typ": "activation+jwt"},
    )
    assert isinstance(_must_refuse(token), InvalidSignature)


def test_unknown_kid_is_unknown_key():
    other = seeded_signing_key(b"someone else")
    token = other.sign("activation+jwt", json.loads(b64d(_payload())))
    assert isinstance(_must_refuse(token), UnknownKey)
    # Same kid as ours but signed by another key: the signature fails.
    impostor = SigningKey.from_raw(SIGNER.kid, raw_private_key(generate_private_key()))
    token = impostor.sign("activation+jwt", json.loads(b64d(_payload())))
    assert isinstance(_must_refuse(token), InvalidSignature)


def test_token_type_confusion_both_ways():
    license_token = issue_license_token(
        SIGNER, SUBJECT, issuer=ISSUER, now=NOW, lifetime=timedelta(hours=1)
    ).token
    with pytest.raises(WrongTokenType):
        VERIFIER.verify_activation(license_token, fingerprint="fp-1", now=NOW)
    with pytest.raises(WrongTokenType):
        VERIFIER.verify_license(ACTIVATION, now=NOW)
    # Re-signing an activation payload as a license token is still a license token:
    # verify_activation refuses it, whatever the claims say.
    claims = json.loads(b64d(_payload()))
    assert claims["fp"] == fingerprint_hash("fp-1")
    relabelled = SIGNER.sign("license+jwt", claims)
    with pytest.raises(WrongTokenType):
        VERIFIER.verify_activation(relabelled, fingerprint="fp-1", now=NOW)


def test_ids_are_decoded_to_canonical_uuids():
    lic = VERIFIER.verify_activation(ACTIVATION, fingerprint="fp-1", now=NOW)
    assert (lic.license_id, lic.organization_id, lic.activation_id) == (
        SUBJECT.license_id,
        SUBJECT.organization_id,
        ACT_ID,
    )
    claims = json.loads(b64d(_payload()))
    assert claims["sub"] == b64(uuid.UUID(SUBJECT.license_id).bytes)
    assert claims["act"] == b64(uuid.UUID(ACT_ID).bytes)
    # A license token that happens to carry an act claim still has no activation id.
    relabelled = SIGNER.sign("license+jwt", claims)
    assert VERIFIER.verify_license(relabelled, now=NOW).activation_id is None


def _is_id(text: str) -> bool:
    try:
        return len(text) == 22 and b64(b64d(text)) == text and len(b64d(text)) == 16
    except ValueError:
        return False


@FAST
@given(claim=st.sampled_from(["sub", "org", "act"]), value=st.text(max_size=40))
def test_id_claims_that_are_not_compact_ids_are_malformed(claim, value):
    if _is_id(value):
        return
    claims = json.loads(b64d(_payload()))
    for bad in (value, str(uuid.UUID(SUBJECT.license_id))):
        claims[claim] = bad
        token = SIGNER.sign("activation+jwt", claims)
        assert isinstance(_must_refuse(token), MalformedToken)


@settings(max_examples=60, deadline=None)
@given(garbage=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_only_raises_license_errors(garbage):
    with pytest.raises(LicenseError):
        VERIFIER.verify_activation(garbage, fingerprint="fp-1", now=NOW)


def test_rotated_keys_keep_verifying_old_tokens():
    new = seeded_signing_key(b"rotated-in")
    jwks = {"keys": [new.public_jwk(), SIGNER.public_jwk()]}
    verifier = Verifier.from_jwks(jwks, product=PRODUCT, issuer=ISSUER)
    assert verifier.verify_activation(ACTIVATION, fingerprint="fp-1", now=NOW).tier == "pro"
    fresh = issue_activation_token(
        new,
        SUBJECT,
        issuer=ISSUER,
        activation_id="0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        fingerprint="fp-1",
        now=NOW,
        lease=timedelta(days=1),
    ).token
    lic = verifier.verify_activation(fresh, fingerprint="fp-1", now=NOW)
    assert lic.activation_id == "0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    # Once the old key is revoked (unpublished), its tokens are unknown.
    revoked = Verifier.from_jwks({"keys": [new.public_jwk()]}, product=PRODUCT, issuer=ISSUER)
    with pytest.raises(UnknownKey):
        revoked.verify_activation(ACTIVATION, fingerprint="fp-1", now=NOW)

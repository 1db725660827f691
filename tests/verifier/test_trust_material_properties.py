"""Property tests for the root of trust: what keys.certificates issues, licentia_verifier
accepts; any tampering with a key certificate, a root endorsement or a revocation list is
refused with a LicenseError subclass, changes nothing the verifier trusts, and so leaves the
attacker's token UnknownKey. Like the token's tamper tests (test_verifier_properties.py)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from licentia_verifier import (
    InvalidSignature,
    LicenseError,
    MalformedToken,
    UnknownKey,
    Verifier,
    WrongIssuer,
    WrongTokenType,
)
from support import seeded_signing_key

from keys.certificates import (
    issue_key_certificate,
    issue_key_revocations,
    issue_root_endorsement,
)
from keys.crypto import SigningKey, generate_private_key, raw_private_key
from keys.tokens import TokenSubject, issue_license_token

ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 3, 1, tzinfo=UTC)

ROOT = seeded_signing_key(b"trust-properties: root")
NEXT_ROOT = seeded_signing_key(b"trust-properties: next root")
SIGNER = seeded_signing_key(b"trust-properties: signing key")
OTHER_ROOT = seeded_signing_key(b"trust-properties: another deployment's root")
ROOT_DOCUMENT = {"keys": [ROOT.public_jwk()], "root_endorsements": []}

CERTIFICATE = issue_key_certificate(
    ROOT,
    SIGNER.public_jwk(),
    issuer=ISSUER,
    now=NOW,
    not_before=NOW - timedelta(minutes=5),
    expires_at=NOW + timedelta(days=1826),
)
ENDORSEMENT = issue_root_endorsement(ROOT, NEXT_ROOT.public_jwk(), issuer=ISSUER, now=NOW)
REVOCATIONS = issue_key_revocations(ROOT, issuer=ISSUER, now=NOW, seq=1, revoked=[SIGNER.kid])
SUBJECT = TokenSubject(
    license_id="5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",
    organization_id="0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    product=PRODUCT,
    tier="pro",
    features={"sso": True},
    max_activations=3,
    license_expires_at=None,
)
TOKEN = issue_license_token(
    SIGNER, SUBJECT, issuer=ISSUER, now=NOW + timedelta(hours=1), lifetime=timedelta(days=1)
).token
TOKEN_NOW = NOW + timedelta(hours=2)

# Each kind with the call that accepts it and what the genuine piece does to a verifier.
KINDS: dict[str, tuple[str, str]] = {
    "certificate": (CERTIFICATE, "add_key_certificate"),
    "endorsement": (ENDORSEMENT, "add_root_endorsement"),
    "revocations": (REVOCATIONS, "add_key_revocations"),
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def fresh() -> Verifier:
    return Verifier.from_root(ROOT_DOCUMENT, product=PRODUCT, issuer=ISSUER)


def must_refuse(kind: str, material: Any) -> LicenseError:
    """Offering ``material`` as ``kind`` raises a LicenseError and changes nothing."""
    verifier = fresh()
    try:
        getattr(verifier, KINDS[kind][1])(material)
    except LicenseError as error:
        assert verifier.trust_material() == fresh().trust_material()
        assert verifier.root_ids == (ROOT.kid,) and verifier.key_ids == ()
        with pytest.raises(UnknownKey):
            verifier.verify_license(TOKEN, now=TOKEN_NOW)
        return error
    raise AssertionError(f"accepted a mutated {kind}: {material!r}")


def test_what_the_server_issues_is_accepted():
    verifier = fresh()
    assert verifier.add_key_certificate(CERTIFICATE) == SIGNER.kid
    assert verifier.verify_license(TOKEN, now=TOKEN_NOW).tier == "pro"
    assert verifier.add_root_endorsement(ENDORSEMENT) == NEXT_ROOT.kid
    assert verifier.add_key_revocations(REVOCATIONS) is True
    with pytest.raises(UnknownKey):
        verifier.verify_license(TOKEN, now=TOKEN_NOW)


kinds = st.sampled_from(sorted(KINDS))
CLAIMS = {
    "certificate": {"iss", "iat", "sub", "jwk", "nbf", "exp"},
    "endorsement": {"iss", "iat", "sub", "jwk"},
    "revocations": {"iss", "iat", "seq", "revoked"},
}


@FAST
@given(kind=kinds, position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_any_single_bit_flip_is_refused(kind, position, bit):
    raw = bytearray(KINDS[kind][0].encode())
    raw[position % len(raw)] ^= 1 << bit
    must_refuse(kind, raw.decode("latin-1"))
    must_refuse(kind, bytes(raw))


@FAST
@given(kind=kinds, cut=st.integers(min_value=1, max_value=400), from_end=st.booleans())
def test_any_truncation_is_refused(kind, cut, from_end):
    material = KINDS[kind][0]
    must_refuse(kind, material[:-cut] if from_end else material[cut:])


@FAST
@given(
    kind=kinds,
    segment=st.integers(min_value=0, max_value=2),
    style=st.sampled_from(["padded", "standard", "whitespace", "percent"]),
)
def test_re_encodings_are_refused(kind, segment, style):
    parts = KINDS[kind][0].split(".")
    raw = b64d(parts[segment])
    if style == "padded":
        parts[segment] = base64.urlsafe_b64encode(raw).decode()
        if parts[segment] == KINDS[kind][0].split(".")[segment]:
            parts[segment] += "===="
    elif style == "standard":
        parts[segment] = base64.b64encode(raw).decode() + "+"
    elif style == "whitespace":
        parts[segment] = parts[segment][:5] + "\n" + parts[segment][5:]
    else:
        parts[segment] = parts[segment][:5] + "%41" + parts[segment][5:]
    must_refuse(kind, ".".join(parts))


@FAST
@given(kind=kinds, order=st.permutations([0, 1, 2]))
def test_segment_swaps_are_refused(kind, order):
    if list(order) != [0, 1, 2]:
        parts = KINDS[kind][0].split(".")
        must_refuse(kind, ".".join(parts[i] for i in order))


header_changes = st.one_of(
    st.fixed_dictionaries({"extra": st.sampled_from(["jku", "x5u", "jwk", "crit", "x5c", "cty"])}),
    st.fixed_dictionaries({"alg": st.sampled_from(["none", "HS256", "RS256", "ES256", "eddsa"])}),
    st.fixed_dictionaries(
        {"typ": st.sampled_from(["JWT", "license+jwt", "key+jwt", "root+jwt", ""])}
    ),
    st.fixed_dictionaries({"kid": st.one_of(st.text(max_size=10), st.integers(), st.none())}),
    st.fixed_dictionaries({"drop": st.sampled_from(["alg", "typ", "kid"])}),
)


@FAST
@given(kind=kinds, change=header_changes)
def test_header_changes_are_refused(kind, change):
    header_segment, payload, signature = KINDS[kind][0].split(".")
    header = json.loads(b64d(header_segment))
    if "extra" in change:
        header[change["extra"]] = "https://attacker.example/keys"
    elif "drop" in change:
        del header[change["drop"]]
    else:
        header.update(change)
    must_refuse(kind, f"{b64(json.dumps(header).encode())}.{payload}.{signature}")


def _resign(kind: str, signer: Any, change: Callable[[dict[str, Any]], None]) -> str:
    header_segment, payload, _ = KINDS[kind][0].split(".")
    claims = json.loads(b64d(payload))
    change(claims)
    return signer.sign(json.loads(b64d(header_segment))["typ"], claims)


@FAST
@given(kind=kinds, value=st.one_of(st.text(max_size=20), st.integers(), st.none()))
def test_claims_swapped_under_a_genuine_signature_are_invalid(kind, value):
    header_segment, payload, signature = KINDS[kind][0].split(".")
    claims = json.loads(b64d(payload))
    claims["sub" if kind != "revocations" else "seq"] = value
    forged = b64(json.dumps(claims, separators=(",", ":")).encode())
    if forged != payload:
        error = must_refuse(kind, f"{header_segment}.{forged}.{signature}")
        assert isinstance(error, InvalidSignature)


def test_a_forged_certificate_for_the_attackers_key_is_refused():
    attacker = seeded_signing_key(b"trust-properties: attacker")
    # Signed by the attacker's key under the root's kid: the signature fails.
    impostor = SigningKey.from_raw(ROOT.kid, raw_private_key(generate_private_key()))
    forged = issue_key_certificate(
        impostor,
        attacker.public_jwk(),
        issuer=ISSUER,
        now=NOW,
        not_before=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert isinstance(must_refuse("certificate", forged), InvalidSignature)
    # Signed by another deployment's root: not a trusted root.
    other = issue_key_certificate(
        OTHER_ROOT,
        SIGNER.public_jwk(),
        issuer=ISSUER,
        now=NOW,
        not_before=NOW,
        expires_at=NOW + timedelta(days=1),
    )
    assert isinstance(must_refuse("certificate", other), UnknownKey)


@FAST
@given(
    kind=kinds,
    claim=st.sampled_from(["iss", "iat", "sub", "jwk", "nbf", "exp", "seq", "revoked"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(),
        st.text(max_size=10),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
    ),
)
def test_re_signed_claims_are_accepted_or_refused_with_a_license_error(kind, claim, value):
    """Signed by the genuine root, any claim value either passes the rules of "Checking
    trust material" or is refused as MalformedToken or WrongIssuer, never anything else."""

    def change(claims: dict[str, Any]) -> None:
        claims[claim] = value

    material = _resign(kind, ROOT, change)
    verifier = fresh()
    try:
        getattr(verifier, KINDS[kind][1])(material)
    except (MalformedToken, WrongIssuer):
        assert verifier.trust_material() == fresh().trust_material()
        return
    # Accepted: a claim the kind does not have is ignored; one it has took an allowed value.
    if claim not in CLAIMS[kind]:
        return
    if claim in ("iat", "nbf", "exp", "seq"):
        assert type(value) is int and value >= (1 if claim == "seq" else 0)
    elif claim == "iss":
        assert value == ISSUER
    elif claim == "revoked":
        assert isinstance(value, list) and all(isinstance(kid, str) for kid in value)
    else:  # sub and jwk: the jwk's kid must be sub, so a change to either alone is refused
        raise AssertionError(f"accepted {claim}={value!r}")


@settings(max_examples=60, deadline=None)
@given(kind=kinds, garbage=st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_arbitrary_input_only_raises_license_errors(kind, garbage):
    must_refuse(kind, garbage)


def test_material_of_the_wrong_kind_is_wrong_token_type():
    for kind, (_, method) in KINDS.items():
        for other_kind, (material, _) in KINDS.items():
            if other_kind != kind:
                with pytest.raises(WrongTokenType):
                    getattr(fresh(), method)(material)

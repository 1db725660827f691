"""Fuzzing the verifier's inputs that are not the token: ``now``, the clock state file, the
fingerprint, and the claims of a correctly signed token.

Whatever they are, a verification returns a License or raises a LicenseError subclass, and
nothing else; the claim rules refuse exactly the values docs/token-format.md refuses, with
the message naming the claim.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from unittest import mock

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from licentia_verifier import (
    ClockRollback,
    License,
    LicenseError,
    MalformedToken,
    Verifier,
    _verifier,
)

from keys.crypto import SigningKey, compute_kid, raw_private_key, raw_public_key
from keys.tokens import TokenSubject, issue_activation_token

ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"
FINGERPRINT = "fp-fuzz"
MAX_EPOCH = 253402300799
LEEWAY = 300
T0 = datetime(2026, 3, 1, tzinfo=UTC)
T0_SECONDS = int(T0.timestamp())
LEASE = timedelta(days=14)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"verifier-fuzz").digest())
SIGNER = SigningKey.from_raw(compute_kid(raw_public_key(_key)), raw_private_key(_key))
JWKS = {"keys": [SIGNER.public_jwk()]}
SUBJECT = TokenSubject(
    license_id="5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",
    organization_id="0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    product=PRODUCT,
    tier="pro",
    features={"sso": True, "seats": 25},
    max_activations=3,
    license_expires_at=None,
)
TOKEN = issue_activation_token(
    SIGNER,
    SUBJECT,
    issuer=ISSUER,
    activation_id="7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
    fingerprint=FINGERPRINT,
    now=T0,
    lease=LEASE,
).token
CLAIMS = json.loads(_verifier._b64url_decode(TOKEN.split(".")[1].encode(), "payload"))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def verify(verifier: Verifier, **kwargs) -> License | LicenseError:
    try:
        return verifier.verify_activation(TOKEN, **{"fingerprint": FINGERPRINT, **kwargs})
    except LicenseError as error:
        return error


# --- now ------------------------------------------------------------------------------------

zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
nows = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**600), max_value=10**600),
    st.floats(),  # with NaN and both infinities
    st.floats(min_value=T0_SECONDS - 10 * 86400, max_value=T0_SECONDS + 30 * 86400),
    st.integers(min_value=0, max_value=MAX_EPOCH + 10),
    st.datetimes(timezones=zones),
    st.datetimes(),  # naive
    st.booleans(),
    st.text(max_size=12),
    st.just(T0_SECONDS * 1000),
)


def in_range(now: object) -> bool:
    if isinstance(now, bool) or not isinstance(now, (int, float, datetime)):
        return False
    if isinstance(now, datetime):
        if now.utcoffset() is None:
            return False
        now = now.timestamp()
    return 0 <= now < MAX_EPOCH + 1


@FUZZ
@given(now=nows)
@example(now=float("inf"))
@example(now=float("nan"))
@example(now=10**400)
@example(now=T0_SECONDS * 1000)
def test_any_now_gives_a_license_or_a_license_error(now):
    verifier = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)
    outcome = verify(verifier, now=now)
    if not in_range(now):
        assert type(outcome) is LicenseError, outcome
    elif isinstance(outcome, License):
        seconds = now.timestamp() if isinstance(now, datetime) else now
        assert T0_SECONDS - LEEWAY <= seconds < T0_SECONDS + LEASE.total_seconds() + LEEWAY


# --- the state file -------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
marks = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.integers(min_value=T0_SECONDS - 86400, max_value=T0_SECONDS + 86400),
    st.floats(),
    st.just(MAX_EPOCH + 1),
    json_values,
)
state_contents = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    marks.map(lambda m: json.dumps({"version": 1, "high_water": m}).encode()),
    st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"high_water":' * n),
)


def plausible_mark(content: bytes) -> float | None:
    """The mark a state file holds, per docs/embedding.md: none unless it is a JSON object
    of at most 4 KiB whose ``high_water`` is a number of seconds from 1970 to 9999."""
    if len(content) > 4096:
        return None
    try:
        value = json.loads(content)["high_water"]
    except Exception:
        return None
    if type(value) in (int, float) and not math.isnan(value) and 0 <= value <= MAX_EPOCH:
        return value
    return None


@FUZZ
@given(
    content=state_contents,
    clock=st.integers(min_value=T0_SECONDS - 60, max_value=T0_SECONDS + 13 * 86400),
    now=st.one_of(st.none(), nows),
)
@example(content=b'{"high_water": Infinity}', clock=T0_SECONDS, now=None)
@example(content=b'{"high_water": 1e300}', clock=T0_SECONDS, now=None)
@example(content=b"[" * 3000 + b"]" * 3000, clock=T0_SECONDS, now=None)
@example(content=b'{"high_water": 1780000000000}', clock=T0_SECONDS, now=None)
def test_any_state_file_gives_a_license_or_a_license_error(content, clock, now):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "state.json")
        with open(path, "wb") as handle:
            handle.write(content)
        verifier = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER, state_path=path)
        with mock.patch.object(_verifier, "time", Clock(clock)):
            outcome = verify(verifier, now=now)
        with open(path, "rb") as handle:
            after = handle.read()
    assert isinstance(outcome, (License, LicenseError))
    if now is not None:
        assert after == content  # a caller's now never writes the file
        return
    mark = plausible_mark(content)
    if mark is not None and clock < mark - LEEWAY:
        assert isinstance(outcome, ClockRollback)
        assert after == content
    else:
        assert isinstance(outcome, License), outcome  # damage counts as no history
        if mark is not None and mark >= clock:
            assert after == content
        else:
            assert json.loads(after) == {"version": 1, "high_water": clock}


# --- fingerprints ---------------------------------------------------------------------------


@FUZZ
@given(fingerprint=st.one_of(st.text(), st.binary(), st.integers(), st.none()))
@example(fingerprint="\ud800")
def test_any_fingerprint_gives_a_license_or_a_license_error(fingerprint):
    verifier = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)
    outcome = verify(verifier, fingerprint=fingerprint, now=T0)
    assert isinstance(outcome, License) == (fingerprint == FINGERPRINT), outcome


# --- claims: the rules refuse exactly what the format refuses -------------------------------


def documented_problem(claim: str, value: object, activation: bool) -> bool:
    """True when docs/token-format.md ("Claims", "Identifiers") refuses this claim value."""
    kind = type(value)
    if claim in ("iat", "nbf", "exp"):
        return not (kind is int and 0 <= value <= MAX_EPOCH)
    if claim == "license_expires_at":
        return not (value is None or (kind is int and 0 <= value <= MAX_EPOCH))
    if claim == "max_activations":
        return kind is not int
    if claim == "features":
        return kind is not dict or not all(
            type(v) in (bool, int, str) or (type(v) is float and math.isfinite(v))
            for v in value.values()
        )
    if claim in ("sub", "org") or (claim == "act" and activation):
        return not (
            kind is str
            and len(value) == 22
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
            and value[-1] in "AQgw"
        )
    if claim in ("iss", "aud", "jti", "tier", "nonce", "fp"):
        return kind is not str
    return False  # any other claim is ignored


finite_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
ids = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    min_size=21,
    max_size=23,
)


def sign(claims: dict) -> str:
    """Signed by hand: any JSON payload, including claims PyJWT would refuse to encode."""
    header = {"alg": "EdDSA", "kid": SIGNER.kid, "typ": "activation+jwt"}
    segments = [
        _verifier.b64url_encode(json.dumps(part, allow_nan=False).encode())
        for part in (header, claims)
    ]
    signing_input = ".".join(segments)
    return signing_input + "." + _verifier.b64url_encode(_key.sign(signing_input.encode()))


CLAIM_NAMES = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "org", "tier", "features")
CLAIM_NAMES += ("max_activations", "license_expires_at", "nonce", "act", "fp", "other")
claim_names = st.sampled_from(CLAIM_NAMES)


@settings(max_examples=400, deadline=None)
@given(claim=claim_names, value=finite_json_values | ids)
def test_one_changed_claim_is_refused_exactly_when_the_format_says(claim, value):
    claims = {**CLAIMS, claim: value}
    token = sign(claims)
    verifier = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)
    try:
        verifier.verify_activation(token, fingerprint=FINGERPRINT, now=T0)
    except MalformedToken as error:
        assert documented_problem(claim, value, True), (claim, value, error)
        assert str(error).startswith(f"claim {claim!r} must be ")
    except LicenseError:
        assert not documented_problem(claim, value, True)
    else:
        assert not documented_problem(claim, value, True)


@settings(max_examples=200, deadline=None)
@given(claim=claim_names)
def test_one_missing_claim_is_refused_exactly_when_it_is_required(claim):
    claims = {k: v for k, v in CLAIMS.items() if k != claim}
    token = sign(claims)
    verifier = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)
    try:
        verifier.verify_activation(token, fingerprint=FINGERPRINT, now=T0)
    except MalformedToken as error:
        assert claim not in ("nonce", "other")
        assert str(error) == f"missing required claim {claim!r}"
    else:
        assert claim in ("nonce", "other")

"""The verifier's own tests: only licentia-verifier, cryptography and pytest are needed."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

import licentia_verifier
from licentia_verifier import (
    ClockRollback,
    Expired,
    InvalidSignature,
    License,
    LicenseError,
    MalformedToken,
    NotYetValid,
    UnknownKey,
    Verifier,
    WrongIssuer,
    WrongMachine,
    WrongProduct,
    WrongTokenType,
)


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


# --- acceptance ---------------------------------------------------------------------------


def test_license_token_round_trips_every_claim(env):
    claims = env.license_claims(nonce="n-123")
    token = env.sign(env.header("license+jwt"), claims)
    lic = env.verifier().verify_license(token, now=at(env.NOW))
    assert claims["sub"] == "XwxvHo9OTQqaQ1t8Hw4tEQ" and claims["org"] == "Cx8sPU5fSmuMfZ4PGis8TQ"
    assert lic.license_id == env.LICENSE_ID == "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11"
    assert lic.activation_id is None
    assert lic.organization_id == env.ORG_ID == "0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert lic.product == env.PRODUCT
    assert lic.tier == "pro"
    assert dict(lic.features) == claims["features"]
    assert lic.max_activations == 3
    assert lic.issued_at == at(claims["iat"])
    assert lic.expires_at == at(claims["exp"])
    assert lic.license_expires_at == at(claims["license_expires_at"])
    assert lic.token_id == claims["jti"]
    assert lic.nonce == "n-123"
    assert lic.issued_at.tzinfo is not None


def test_activation_token_round_trips(env):
    token = env.activation()
    lic = env.verifier().verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    assert lic.activation_id == env.ACTIVATION_ID == "7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
    assert lic.license_id == env.LICENSE_ID and lic.organization_id == env.ORG_ID
    assert lic.nonce is None


def test_perpetual_license_and_rfc9864_alg_name(env):
    header = {"alg": "Ed25519", "kid": env.kid, "typ": "license+jwt"}
    token = env.sign(header, env.license_claims(license_expires_at=None))
    lic = env.verifier().verify_license(token, now=env.NOW)
    assert lic.license_expires_at is None


def test_now_defaults_to_the_clock_and_accepts_epoch_numbers(env):
    import time

    now = int(time.time())
    token = env.license(iat=now - 10, nbf=now - 10, exp=now + 600, license_expires_at=None)
    verifier = env.verifier()
    assert verifier.verify_license(token).license_id == env.LICENSE_ID
    assert verifier.verify_license(token, now=float(now)).license_id == env.LICENSE_ID


def test_extra_unknown_claims_are_tolerated(env):
    token = env.license(future_claim={"x": 1})
    assert env.verifier().verify_license(token, now=env.NOW).tier == "pro"


# --- License object -----------------------------------------------------------------------


def test_license_is_read_only_and_has_limit(env):
    lic = env.verifier().verify_license(env.license(), now=env.NOW)
    with pytest.raises(AttributeError):
        lic.tier = "enterprise"  # type: ignore[misc]
    with pytest.raises(TypeError):
        lic.features["sso"] = False  # type: ignore[index]
    assert lic.has("sso") and lic.has("seats") and lic.has("edition")
    assert not lic.has("beta") and not lic.has("missing")
    assert lic.limit("seats") == 25 and lic.limit("ratio") == 0.5
    assert lic.limit("sso") is None and lic.limit("missing", 0) == 0
    assert pickle.loads(pickle.dumps(lic)) == lic
    assert env.LICENSE_ID in repr(lic)


def test_license_can_be_built_by_hand(env):
    values = dict(
        license_id=env.LICENSE_ID,
        organization_id=env.ORG_ID,
        product="p",
        tier="t",
        features={"a": 1},
        max_activations=1,
        issued_at=at(100),
        expires_at=at(200),
        license_expires_at=None,
    )
    lic = License(**values)
    assert lic.expires_at == at(200) and lic.limit("a") == 1 and lic.activation_id is None
    assert (lic.license_id, lic.organization_id) == (env.LICENSE_ID, env.ORG_ID)
    assert License(**values, activation_id=env.ACTIVATION_ID).activation_id == env.ACTIVATION_ID
    # Ids are UUIDs in the canonical text form the verifier returns.
    for bad in ("l", env.LICENSE_ID.upper(), env.LICENSE_ID.replace("-", ""), 5):
        with pytest.raises(ValueError, match="license_id"):
            License(**{**values, "license_id": bad})
        with pytest.raises(ValueError, match="activation_id"):
            License(**values, activation_id=bad)


# --- rejections ---------------------------------------------------------------------------


def expect(error, fn, *args, **kwargs):
    with pytest.raises(error) as info:
        fn(*args, **kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert isinstance(info.value, LicenseError)
    return info.value


def test_token_type_confusion_both_ways(env):
    v = env.verifier()
    expect(WrongTokenType, v.verify_license, env.activation(), now=env.NOW)
    expect(WrongTokenType, v.verify_activation, env.license(), fingerprint="x", now=env.NOW)
    header = env.header("JWT")
    expect(WrongTokenType, v.verify_license, env.sign(header, env.license_claims()), now=env.NOW)


def test_wrong_machine_issuer_product(env):
    v = env.verifier()
    expect(WrongMachine, v.verify_activation, env.activation(), fingerprint="other", now=env.NOW)
    expect(WrongMachine, v.verify_activation, env.activation(), fingerprint="", now=env.NOW)
    expect(WrongMachine, v.verify_activation, env.activation(), fingerprint=None, now=env.NOW)
    expect(WrongIssuer, v.verify_license, env.license(iss="https://evil.test"), now=env.NOW)
    expect(WrongProduct, v.verify_license, env.license(aud="other-product"), now=env.NOW)
    expect(MalformedToken, v.verify_license, env.license(aud=[env.PRODUCT]), now=env.NOW)


def test_times_and_leeway(env):
    v = env.verifier(leeway=timedelta(seconds=10))
    exp = env.NOW + 100
    token = env.license(exp=exp)
    assert v.verify_license(token, now=exp + 9)
    expect(Expired, v.verify_license, token, now=exp + 10)
    lexp = env.license(license_expires_at=env.NOW + 50, exp=env.NOW + 40)
    expect(Expired, v.verify_license, lexp, now=env.NOW + 61)
    future = env.license(iat=env.NOW - 60, nbf=env.NOW + 100)
    expect(NotYetValid, v.verify_license, future, now=env.NOW)
    issued = env.license(iat=env.NOW, nbf=env.NOW)
    assert v.verify_license(issued, now=env.NOW - 10)
    expect(ClockRollback, v.verify_license, issued, now=env.NOW - 11)


def test_now_must_be_aware(env):
    v = env.verifier()
    expect(LicenseError, v.verify_license, env.license(), now=datetime(2026, 1, 1))
    expect(LicenseError, v.verify_license, env.license(), now="yesterday")


def test_unknown_kid_and_missing_kid(env):
    v = env.verifier()
    other = env.seeded_key("another key")
    token = env.sign({"alg": "EdDSA", "kid": "nope", "typ": "license+jwt"}, env.license_claims())
    expect(UnknownKey, v.verify_license, token, now=env.NOW)
    token = env.sign(env.header("license+jwt"), env.license_claims(), key=other)
    expect(InvalidSignature, v.verify_license, token, now=env.NOW)
    token = env.sign({"alg": "EdDSA", "typ": "license+jwt"}, env.license_claims())
    expect(MalformedToken, v.verify_license, token, now=env.NOW)
    token = env.sign({"alg": "EdDSA", "kid": 1, "typ": "license+jwt"}, env.license_claims())
    expect(MalformedToken, v.verify_license, token, now=env.NOW)


@pytest.mark.parametrize("field", ["jku", "x5u", "jwk", "crit", "x5c", "cty", "b64", "zip"])
def test_any_other_header_field_is_refused(env, field):
    token = env.sign(env.header("license+jwt", **{field: "x"}), env.license_claims())
    expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)


def test_duplicate_header_names_are_refused(env):
    header = b'{"alg":"EdDSA","kid":"key-1","typ":"activation+jwt","typ":"license+jwt"}'
    token = env.sign(header, env.license_claims())
    expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)


def _forge(env, alg: str, signature: bytes) -> str:
    header = env.encode_segment({"alg": alg, "kid": env.kid, "typ": "license+jwt"})
    payload = env.encode_segment(env.license_claims())
    return f"{header}.{payload}.{env.b64(signature)}"


def test_alg_none_hs256_rs256_es256_are_refused(env):
    v = env.verifier()
    token = _forge(env, "none", b"")
    assert token.endswith(".")
    expect(InvalidSignature, v.verify_license, token, now=env.NOW)
    # HS256 keyed with the public key (the classic algorithm-confusion attack).
    header = env.encode_segment({"alg": "HS256", "kid": env.kid, "typ": "license+jwt"})
    payload = env.encode_segment(env.license_claims())
    for secret in (env.jwks["keys"][0]["x"].encode(), json.dumps(env.jwks["keys"][0]).encode()):
        mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        expect(InvalidSignature, v.verify_license, f"{header}.{payload}.{env.b64(mac)}")
    expect(InvalidSignature, v.verify_license, _forge(env, "RS256", b"\x01" * 256))
    expect(InvalidSignature, v.verify_license, _forge(env, "ES256", b"\x01" * 64))
    expect(InvalidSignature, v.verify_license, _forge(env, "EdDSA", b"\x00" * 64))
    expect(InvalidSignature, v.verify_license, _forge(env, "EdDSA", b"\x00" * 63))


@pytest.mark.parametrize(
    "claim",
    [
        "iss",
        "sub",
        "aud",
        "iat",
        "nbf",
        "exp",
        "jti",
        "org",
        "tier",
        "features",
        "max_activations",
        "license_expires_at",
    ],
)
def test_every_required_claim_is_required(env, claim):
    claims = env.license_claims()
    del claims[claim]
    token = env.sign(env.header("license+jwt"), claims)
    err = expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)
    assert claim in str(err)


@pytest.mark.parametrize("claim", ["act", "fp"])
def test_activation_claims_are_required(env, claim):
    claims = env.activation_claims()
    del claims[claim]
    token = env.sign(env.header("activation+jwt"), claims)
    v = env.verifier()
    expect(MalformedToken, v.verify_activation, token, fingerprint=env.FINGERPRINT, now=env.NOW)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iat", True),
        ("exp", 1.5e9),
        ("exp", "1780000000"),
        ("nbf", -1),
        ("exp", 10**20),
        ("max_activations", True),
        ("max_activations", 3.0),
        ("license_expires_at", False),
        ("license_expires_at", "never"),
        ("sub", 12),
        ("org", None),
        ("tier", ["pro"]),
        ("features", ["sso"]),
        ("features", {"sso": None}),
        ("features", {"sso": {"nested": True}}),
        ("features", {"sso": [1]}),
        ("jti", None),
        ("nonce", 5),
    ],
)
def test_claim_types_are_strict(env, claim, value):
    token = env.license(**{claim: value})
    expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)


@pytest.mark.parametrize("claim", ["sub", "org", "act"])
@pytest.mark.parametrize(
    "value",
    [
        "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",  # the UUID text form
        "5f0c6f1e8f4e4d0a9a435b7c1f0e2d11",  # hex
        "XwxvHo9OTQqaQ1t8Hw4tER",  # non-zero unused bits in the last character
        "XwxvHo9OTQqaQ1t8Hw4tE",  # 21 characters
        "XwxvHo9OTQqaQ1t8Hw4tEQA",  # 23 characters
        "XwxvHo9OTQqaQ1t8Hw4tEQ==",  # padded
        "XwxvHo9OTQqaQ1t8Hw4t+Q",  # standard alphabet
        "XwxvHo9OTQqaQ1t8Hw4t Q",
        "XwxvHo9OTQqaQ1t8Hw4t\u00e9Q",  # 22 characters, not ASCII
        "",
    ],
)
def test_id_claims_must_be_compact_uuids(env, claim, value):
    token = env.activation(**{claim: value})
    v = env.verifier()
    err = expect(
        MalformedToken, v.verify_activation, token, fingerprint=env.FINGERPRINT, now=env.NOW
    )
    assert repr(claim) in str(err)


def test_ids_decode_to_canonical_uuid_text(env):
    v = env.verifier()
    for text in (
        "00000000-0000-0000-0000-000000000000",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
        "fbefbeff-effb-4fbe-bfef-befbefbefbef",  # encodes with "-" and "_"
    ):
        claim = env.id_claim(text)
        assert len(claim) == 22
        token = env.activation(sub=claim, org=claim, act=claim)
        lic = v.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
        assert (lic.license_id, lic.organization_id, lic.activation_id) == (text, text, text)
    # An act claim in a license token is not an activation id.
    token = env.license(act=env.id_claim(env.ACTIVATION_ID))
    assert v.verify_license(token, now=env.NOW).activation_id is None


def test_nan_and_infinity_are_not_json(env):
    for literal in ("NaN", "Infinity", "-Infinity", "1e400"):
        raw = json.dumps(env.license_claims(), separators=(",", ":"))
        raw = raw.replace('"seats":25', f'"seats":{literal}')
        token = env.sign(env.header("license+jwt"), raw.encode())
        expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'"x"', b"null", b"{", b"\xff\xfe", b'{"a":1} x', b"[" * 5000 + b"]" * 5000],
)
def test_payload_must_be_a_json_object(env, payload):
    token = env.sign(env.header("license+jwt"), payload)
    expect(MalformedToken, env.verifier().verify_license, token, now=env.NOW)


def test_encoding_strictness(env):
    v = env.verifier()
    token = env.license()
    header, payload, signature = token.split(".")
    for bad in (
        token + "=",  # padding
        f"{header}=.{payload}.{signature}",
        f"{header}.{payload}.{signature[:-1]}",  # wrong length
        f"{header}.{payload}.{signature}.x",  # four segments
        f"{header}.{payload}",  # two segments
        token.replace("-", "+").replace("_", "/") if ("-" in token or "_" in token) else "a+b.c.d",
        f" {token}",
        f"{token}\n",
        token[:10] + "\u00e9" + token[10:],
        "",
        "..",
    ):
        expect(MalformedToken, v.verify_license, bad, now=env.NOW)
    # A non-canonical last character (unused bits set) in the signature segment.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    tweaked = alphabet[alphabet.index(last) | 1]
    if tweaked != last:
        expect(MalformedToken, v.verify_license, f"{header}.{payload}.{signature[:-1]}{tweaked}")


def test_oversized_tokens_are_refused_before_parsing(env):
    v = env.verifier()
    err = expect(MalformedToken, v.verify_license, "a" * (16 * 1024 + 1), now=env.NOW)
    assert "16 KiB" in str(err)
    big = env.license(features={f"f{i}": True for i in range(3000)})
    assert len(big) > 16 * 1024
    expect(MalformedToken, v.verify_license, big, now=env.NOW)


@pytest.mark.parametrize("value", [None, 5, object(), ["a.b.c"]])
def test_non_string_tokens(env, value):
    expect(MalformedToken, env.verifier().verify_license, value, now=env.NOW)


def test_bytes_token_is_accepted(env):
    assert env.verifier().verify_license(env.license().encode(), now=env.NOW)


def test_single_bit_flips_always_raise_license_errors(env):
    v = env.verifier()
    token = env.activation().encode()
    for index in range(0, len(token), 3):
        for bit in (0, 3, 6):
            mutated = bytearray(token)
            mutated[index] ^= 1 << bit
            try:
                text = mutated.decode("latin-1")
            except UnicodeDecodeError:  # pragma: no cover
                continue
            with pytest.raises(LicenseError):
                v.verify_activation(text, fingerprint=env.FINGERPRINT, now=env.NOW)


# --- key set ------------------------------------------------------------------------------


def test_from_jwks_accepts_dict_text_path_and_ignores_other_keys(env, tmp_path):
    rsa_like = {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"}
    oct_key = {"kty": "oct", "kid": env.kid, "k": "c2VjcmV0"}
    x25519 = {"kty": "OKP", "crv": "X25519", "kid": "x", "x": env.jwks["keys"][0]["x"]}
    enc = dict(env.jwks["keys"][0], use="enc", kid="enc")
    jwks = {"keys": [rsa_like, oct_key, x25519, enc, "junk", *env.jwks["keys"]]}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    for source in (jwks, json.dumps(jwks), json.dumps(jwks).encode(), path, str(path)):
        v = Verifier.from_jwks(source, product=env.PRODUCT, issuer=env.ISSUER)
        assert v.key_ids == (env.kid,)
        assert v.verify_license(env.license(), now=env.NOW).tier == "pro"


@pytest.mark.parametrize(
    "jwks",
    [
        {},
        {"keys": "x"},
        {"keys": []},
        {"keys": [{"kty": "RSA", "kid": "r"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "A" * 43, "d": "A" * 43}]},
        "[1, 2]",
        "{not json",
        "[" * 100_000 + "]" * 100_000,  # nested too deep to parse: not RecursionError
    ],
)
def test_unusable_key_sets_are_refused(jwks):
    with pytest.raises(ValueError):
        Verifier.from_jwks(jwks, product="p", issuer="i")


def test_two_keys_with_one_kid_are_refused(env):
    other = env.jwk(env.seeded_key("other"), env.kid)
    with pytest.raises(ValueError, match="share the kid"):
        Verifier.from_jwks({"keys": [*env.jwks["keys"], other]}, product="p", issuer="i")


def test_constructor_arguments_are_checked(env):
    for kwargs in ({"product": ""}, {"issuer": ""}, {"leeway": timedelta(seconds=-1)}):
        with pytest.raises(ValueError):
            env.verifier(**kwargs)


def test_retired_keys_keep_verifying_their_tokens(env):
    new_key = env.seeded_key("key-2")
    jwks = {"keys": [env.jwk(new_key, "key-2"), *env.jwks["keys"]]}
    v = Verifier.from_jwks(jwks, product=env.PRODUCT, issuer=env.ISSUER)
    assert v.verify_license(env.license(), now=env.NOW)
    header = {"alg": "EdDSA", "kid": "key-2", "typ": "license+jwt"}
    assert v.verify_license(env.sign(header, env.license_claims(), key=new_key), now=env.NOW)


# --- clock rollback high-water mark ---------------------------------------------------------


def test_high_water_mark_detects_rollback_across_restarts(env, tmp_path, clock):
    state = tmp_path / "sub" / "state.json"
    token = env.license(iat=env.NOW - 86400, nbf=env.NOW - 86400, exp=env.NOW + 86400)
    v = env.verifier(state_path=state)
    v.verify_license(token)  # the local clock reads NOW
    stored = json.loads(state.read_text())["high_water"]
    assert stored == env.NOW
    # A new process (a new verifier) with the clock set back by an hour.
    clock.now = env.NOW - 3600
    v2 = env.verifier(state_path=state)
    expect(ClockRollback, v2.verify_license, token)
    # Within the leeway is fine; the mark is never moved backwards.
    clock.now = env.NOW - 200
    v2.verify_license(token)
    assert json.loads(state.read_text())["high_water"] == env.NOW
    clock.now = env.NOW + 7200
    v3 = env.verifier(state_path=state)
    v3.verify_license(token)
    assert json.loads(state.read_text())["high_water"] == env.NOW + 7200
    assert not [p for p in state.parent.iterdir() if p.name.endswith(".tmp")]


def test_high_water_mark_in_one_process(env, tmp_path, clock):
    token = env.license(iat=env.NOW - 86400, nbf=env.NOW - 86400, exp=env.NOW + 86400)
    v = env.verifier(state_path=tmp_path / "state.json")
    clock.now = env.NOW + 1000
    v.verify_license(token)
    clock.now = env.NOW
    expect(ClockRollback, v.verify_license, token)


def test_corrupt_or_unwritable_state_does_not_break_verification(env, tmp_path):
    token = env.license()
    state = tmp_path / "state.json"
    state.write_text("garbage")
    assert env.verifier(state_path=state).verify_license(token, now=env.NOW)
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert env.verifier(state_path=blocked / "state.json").verify_license(token, now=env.NOW)


# --- fingerprint --------------------------------------------------------------------------


def test_machine_fingerprint_is_stable_and_salted(monkeypatch, tmp_path):
    from licentia_verifier import _fingerprint

    machine_id = tmp_path / "machine-id"
    machine_id.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    monkeypatch.setattr(_fingerprint.sys, "platform", "linux")
    monkeypatch.setattr(_fingerprint, "_LINUX_SOURCES", (str(tmp_path / "none"), str(machine_id)))
    a = licentia_verifier.machine_fingerprint("product-a")
    assert a == licentia_verifier.machine_fingerprint(b"product-a")
    assert a != licentia_verifier.machine_fingerprint("product-b")
    assert len(a) == 43 and "3d1219c7" not in a
    expected = hmac.new(
        b"product-a",
        b"licentia-machine-fingerprint-v1\x00" + b"3d1219c7c4c5404aaa1f6d2a48adfda4",
        hashlib.sha256,
    ).digest()
    import base64

    assert a == base64.urlsafe_b64encode(expected).rstrip(b"=").decode()
    with pytest.raises(ValueError):
        licentia_verifier.machine_fingerprint("")


@pytest.mark.parametrize("content", [None, "", "uninitialized\n", "0" * 32])
def test_machine_fingerprint_unavailable(monkeypatch, tmp_path, content):
    from licentia_verifier import FingerprintUnavailable, _fingerprint

    path = tmp_path / "machine-id"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(_fingerprint.sys, "platform", "linux")
    monkeypatch.setattr(_fingerprint, "_LINUX_SOURCES", (str(path),))
    with pytest.raises(FingerprintUnavailable):
        licentia_verifier.machine_fingerprint("p")


def test_fingerprint_unavailable_on_unknown_platforms(monkeypatch):
    from licentia_verifier import FingerprintUnavailable, _fingerprint

    monkeypatch.setattr(_fingerprint.sys, "platform", "plan9")
    with pytest.raises(FingerprintUnavailable):
        licentia_verifier.machine_fingerprint("p")


# --- surface, import cost, CLI ------------------------------------------------------------


def test_public_surface_is_small():
    assert set(licentia_verifier.__all__) == {
        "Verifier",
        "License",
        "Usage",
        "machine_fingerprint",
        "LicenseError",
        "MalformedToken",
        "InvalidSignature",
        "UnknownKey",
        "WrongTokenType",
        "WrongIssuer",
        "WrongProduct",
        "WrongMachine",
        "Expired",
        "NotYetValid",
        "ClockRollback",
        "FingerprintUnavailable",
        # the online client (issue 5), loaded lazily
        "LicenseClient",
        "ActivationRefused",
        "NotActivated",
        "ServerUnavailable",
    }
    for name in licentia_verifier.__all__:
        obj = getattr(licentia_verifier, name)
        if isinstance(obj, type) and name not in ("License", "Usage", "Verifier", "LicenseClient"):
            assert issubclass(obj, LicenseError)
    with pytest.raises(AttributeError):
        licentia_verifier.does_not_exist  # noqa: B018


def test_import_is_lean_and_has_no_network_code():
    code = (
        "import sys, licentia_verifier; "
        "bad = [m for m in ('urllib.request', 'http.client', 'socket', 'ssl', 'jwt', 'server',"
        " 'keys', 'licentia_verifier._state', 'hashlib', 'argparse') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_verify(env, tmp_path, capsys):
    from licentia_verifier.__main__ import main

    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(env.jwks))
    base = ["verify", "--jwks", str(jwks), "--product", env.PRODUCT, "--now", str(env.NOW)]
    assert main([*base, env.license()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["license_id"] == env.LICENSE_ID and out["issuer"] == env.ISSUER
    assert out["organization_id"] == env.ORG_ID and out["activation_id"] is None
    assert out["features"]["seats"] == 25

    assert main([*base, "--fingerprint", env.FINGERPRINT, env.activation()]) == 0
    assert json.loads(capsys.readouterr().out)["activation_id"] == env.ACTIVATION_ID

    assert main([*base, env.activation()]) == 1
    assert capsys.readouterr().out.startswith("WrongTokenType: ")
    assert main([*base, "--issuer", "https://other.test", env.license()]) == 1
    assert capsys.readouterr().out.startswith("WrongIssuer: ")
    assert main([*base, "not-a-token"]) == 1
    assert capsys.readouterr().out.startswith("MalformedToken: ")
    assert main([*base[:-2], "--now", str(env.NOW + 10**8), env.license()]) == 1
    assert capsys.readouterr().out.startswith("Expired: ")


def test_cli_as_a_module(env, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(env.jwks))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "licentia_verifier",
            "verify",
            env.license(),
            "--jwks",
            str(jwks),
            "--product",
            env.PRODUCT,
            "--issuer",
            env.ISSUER,
            "--now",
            str(env.NOW),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tier"] == "pro"


def test_import_does_not_load_the_network_client():
    code = (
        "import sys, licentia_verifier; "
        "print('licentia_verifier.client' in sys.modules, 'urllib.request' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

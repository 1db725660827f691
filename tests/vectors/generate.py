"""Generate the Licentia token test vectors (tests/vectors/*.json), deterministically.

    uv run python tests/vectors/generate.py          # (re)write the vectors
    uv run python tests/vectors/generate.py --check  # exit 1 if the files are stale

Keys are derived from fixed seeds, claims (including jti) are fixed, and Ed25519 signatures
are deterministic, so the output is byte-for-byte stable. Each vector is one JSON file:

    {"description", "jwks", "verifier": {"product", "issuer", "leeway_seconds"},
     "method": "verify_license" | "verify_activation" | "verify_usage", "token", "now",
     ["fingerprint"],
     ["released_at"],
     "expected": {"ok": {<claims>}, "ids": {"license_id", "organization_id",
                  "activation_id", ["user_id"]}} | {"error": "<ErrorName>"}}

"ids" are the canonical UUID texts a verifier reports for the compact id claims.

The certificate path (a product that embeds only the root) has its own vectors in
tests/vectors/certificates/*.json:

    {"description", "root": <licentia-root.json as embedded>, "root_endorsements": [...],
     "key_certificates": [...], "key_revocations": [...], "verifier", "method", "token", "now",
     "expected": {"root_endorsements": ["ok" | "<ErrorName>"], "key_certificates": [...],
                  "key_revocations": ["ok" | "ignored" | "<ErrorName>"],
                  "ok": ..., "ids": ... | "error": "<ErrorName>"}}

See docs/token-format.md, sections "Test vectors" and "Root of trust".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from keys.crypto import SigningKey, compute_kid, raw_private_key, raw_public_key
from keys.tokens import encode_id

HERE = Path(__file__).resolve().parent
ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"
LEEWAY = 300
NOW = 1_780_000_000  # 2026-05-28T20:26:40Z
FINGERPRINT = "k3Vb0mK0c1m4Qe9fJ2y5u8w1x4z7B0D3F6H9J2L5N8P"
LICENSE_ID = "5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11"
ORG_ID = "0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
ACTIVATION_ID = "7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f"
USER_ID = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
# In tokens the ids are the UUIDs' 16 bytes as 22-character base64url.
SUB, ORG, ACT = encode_id(LICENSE_ID), encode_id(ORG_ID), encode_id(ACTIVATION_ID)
USR = encode_id(USER_ID)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _seg(value: Any) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def _signer(seed: str) -> SigningKey:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.encode()).digest())
    return SigningKey.from_raw(compute_kid(raw_public_key(key)), raw_private_key(key))


ACTIVE = _signer("licentia test vectors: active key")
RETIRED = _signer("licentia test vectors: retired key")
UNPUBLISHED = _signer("licentia test vectors: unpublished key")
JWKS = {"keys": [ACTIVE.public_jwk(), RETIRED.public_jwk()]}


def _fp_hash(fingerprint: str) -> str:
    return _b64(hashlib.sha256(fingerprint.encode("utf-8")).digest())


def license_claims(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUB,
        "aud": PRODUCT,
        "iat": NOW - 3600,
        "nbf": NOW - 3600,
        "exp": NOW + 14 * 86400,
        "jti": "q8J3xVw0Yl5nT2bC",
        "org": ORG,
        "tier": "pro",
        "features": {"sso": True, "seats": 25, "export": False, "edition": "studio"},
        "max_activations": 3,
        "license_expires_at": NOW + 180 * 86400,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not _DROP}


def activation_claims(**changes: Any) -> dict[str, Any]:
    base = {"act": ACT, "fp": _fp_hash(FINGERPRINT)}
    base.update(changes)
    return license_claims(**base)


def usage_claims(**changes: Any) -> dict[str, Any]:
    """A usage token: 7 of 10 automations used, the month ending in 3 days (its exp)."""
    base: dict[str, Any] = {
        "exp": NOW + 3 * 86400,
        "meter": "automations",
        "used": 7,
        "limit": 10,
        "period_end": NOW + 3 * 86400,
    }
    base.update(changes)
    return license_claims(**base)


_DROP = object()
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _raw_token(header: dict[str, Any], claims: Any, signature: bytes) -> str:
    payload = _seg(claims) if not isinstance(claims, bytes) else _b64(claims)
    return f"{_seg(header)}.{payload}.{_b64(signature)}"


def _ed_sign(signer: SigningKey, header: dict[str, Any], claims: Any) -> str:
    """Sign with an arbitrary header (the server never does this; attacks and edge cases do)."""
    payload = _seg(claims) if not isinstance(claims, bytes) else _b64(claims)
    signing_input = f"{_seg(header)}.{payload}"
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(_SEEDS[signer.kid].encode()).digest())
    return f"{signing_input}.{_b64(key.sign(signing_input.encode()))}"


_SEEDS = {
    ACTIVE.kid: "licentia test vectors: active key",
    RETIRED.kid: "licentia test vectors: retired key",
    UNPUBLISHED.kid: "licentia test vectors: unpublished key",
}


def _header(typ: str, signer: SigningKey = ACTIVE, **extra: Any) -> dict[str, Any]:
    return {"alg": "EdDSA", "kid": signer.kid, "typ": typ, **extra}


def _fake_signature(label: str, size: int) -> bytes:
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{len(out)}".encode()).digest()
    return out[:size]


def build() -> dict[str, dict[str, Any]]:
    """All vectors by file name."""
    L, A, U = "license+jwt", "activation+jwt", "usage+jwt"
    vectors: dict[str, dict[str, Any]] = {}

    def add(
        name: str,
        description: str,
        token: str,
        expected: dict[str, Any],
        *,
        method: str = "verify_license",
        fingerprint: str | None = None,
        now: int = NOW,
        released_at: int | None = None,
    ) -> None:
        vector: dict[str, Any] = {
            "description": description,
            "jwks": JWKS,
            "verifier": {"product": PRODUCT, "issuer": ISSUER, "leeway_seconds": LEEWAY},
            "method": method,
            "token": token,
            "now": now,
        }
        if method == "verify_activation":
            vector["fingerprint"] = FINGERPRINT if fingerprint is None else fingerprint
        if released_at is not None:
            vector["released_at"] = released_at
        vector["expected"] = expected
        vectors[name] = vector

    def ok(claims: dict[str, Any]) -> dict[str, Any]:
        # "ok": the exact payload; "ids": what a verifier reports for the id claims.
        ids = {"license_id": LICENSE_ID, "organization_id": ORG_ID, "activation_id": None}
        if "act" in claims:
            ids["activation_id"] = ACTIVATION_ID
        if "usr" in claims:  # named-user activations only
            assert claims["usr"] == USR
            ids["user_id"] = USER_ID
        assert (claims["sub"], claims["org"], claims.get("act", ACT)) == (SUB, ORG, ACT)
        return {"ok": claims, "ids": ids}

    def error(name: str) -> dict[str, Any]:
        return {"error": name}

    # --- accepted ---------------------------------------------------------------------
    c = license_claims()
    add("valid-license", "A license token signed by the active key.", ACTIVE.sign(L, c), ok(c))
    c = license_claims(license_expires_at=None, nonce="client-nonce-42")
    add(
        "valid-license-perpetual-with-nonce",
        "A perpetual license (license_expires_at null) echoing a request nonce.",
        ACTIVE.sign(L, c),
        ok(c),
    )
    c = activation_claims()
    add(
        "valid-activation",
        "An activation token for the vector fingerprint; exp is the offline lease.",
        ACTIVE.sign(A, c),
        ok(c),
        method="verify_activation",
    )
    add(
        "valid-activation-retired-key",
        "Signed by a retired key that is still published in the JWKS.",
        RETIRED.sign(A, c),
        ok(c),
        method="verify_activation",
    )
    c = license_claims()
    add(
        "valid-license-alg-ed25519",
        'The RFC 9864 algorithm name "Ed25519" is accepted like "EdDSA".',
        _ed_sign(ACTIVE, {"alg": "Ed25519", "kid": ACTIVE.kid, "typ": L}, c),
        ok(c),
    )
    c = license_claims(exp=NOW - 200)
    add(
        "valid-license-expired-within-leeway",
        "exp passed 200 s ago, inside the 300 s leeway.",
        ACTIVE.sign(L, c),
        ok(c),
    )

    # --- perpetual fallback and trials (optional claims) ---------------------------------
    updates_until = NOW - 30 * 86400
    c = activation_claims(license_expires_at=None, updates_until=updates_until)
    add(
        "valid-activation-fallback-older-build",
        "Perpetual fallback: the license's updates ended 30 days ago (updates_until); this "
        "build was released before that, so it is covered.",
        ACTIVE.sign(A, c),
        ok(c),
        method="verify_activation",
        released_at=updates_until - 86400,
    )
    add(
        "valid-activation-fallback-build-at-updates-until",
        "A build released exactly at updates_until is covered.",
        ACTIVE.sign(A, c),
        ok(c),
        method="verify_activation",
        released_at=updates_until,
    )
    add(
        "expired-activation-fallback-newer-build",
        "A build released one second after updates_until is not covered: Expired.",
        ACTIVE.sign(A, c),
        error("Expired"),
        method="verify_activation",
        released_at=updates_until + 1,
    )
    c = license_claims(license_expires_at=None, updates_until=updates_until)
    add(
        "valid-license-fallback-without-build-date",
        "A fallback license token verified without a build date: updates_until is reported, "
        "not enforced.",
        ACTIVE.sign(L, c),
        ok(c),
    )
    c = activation_claims(trial=True, tier="trial", max_activations=1)
    add(
        "valid-activation-trial",
        "A trial's activation token: trial is true.",
        ACTIVE.sign(A, c),
        ok(c),
        method="verify_activation",
    )
    add(
        "malformed-trial-not-true",
        "trial is present but false (the claim is true or absent).",
        ACTIVE.sign(L, license_claims(trial=False)),
        error("MalformedToken"),
    )
    # --- named users (optional claim of activation tokens) --------------------------------
    c = activation_claims(usr=USR, tier="team")
    add(
        "valid-activation-named-user",
        "A named-user license's activation token: usr is the user the seat is bound to.",
        ACTIVE.sign(A, c),
        ok(c),
        method="verify_activation",
    )
    add(
        "malformed-user-id-uuid-text",
        "usr is a UUID's text form, not a compact id.",
        ACTIVE.sign(A, activation_claims(usr=USER_ID)),
        error("MalformedToken"),
        method="verify_activation",
    )
    add(
        "malformed-updates-until-null",
        "updates_until is null (the claim is integer seconds or absent).",
        ACTIVE.sign(L, license_claims(updates_until=None)),
        error("MalformedToken"),
    )

    # --- malformed ----------------------------------------------------------------------
    big = license_claims(features={f"feature-{i:05d}": True for i in range(1000)})
    add(
        "malformed-too-large",
        "Longer than 16 KiB: refused before any parsing.",
        ACTIVE.sign(L, big),
        error("MalformedToken"),
    )
    good = ACTIVE.sign(L, license_claims())
    add(
        "malformed-two-segments",
        "Only header.payload.",
        good.rsplit(".", 1)[0],
        error("MalformedToken"),
    )
    add(
        "malformed-padded-signature",
        "Base64url padding is not allowed.",
        good + "==",
        error("MalformedToken"),
    )
    add(
        "malformed-missing-claim",
        "No jti claim.",
        ACTIVE.sign(L, license_claims(jti=_DROP)),
        error("MalformedToken"),
    )
    add(
        "malformed-boolean-as-integer",
        "max_activations is true, not an integer.",
        ACTIVE.sign(L, license_claims(max_activations=True)),
        error("MalformedToken"),
    )
    add(
        "malformed-float-time",
        "exp is a float, not an integer.",
        ACTIVE.sign(L, license_claims(exp=NOW + 86400.5)),
        error("MalformedToken"),
    )
    add(
        "malformed-header-jku",
        "A jku header field (never trusted, refused outright).",
        _ed_sign(ACTIVE, _header(L, jku="https://attacker.example/jwks.json"), license_claims()),
        error("MalformedToken"),
    )
    add(
        "malformed-header-crit",
        "A crit header field.",
        _ed_sign(ACTIVE, _header(L, crit=["exp"]), license_claims()),
        error("MalformedToken"),
    )
    add(
        "malformed-id-uuid-text",
        "sub is the 36-character UUID text, not the 22-character base64url id.",
        ACTIVE.sign(L, license_claims(sub=LICENSE_ID)),
        error("MalformedToken"),
    )
    # 22 characters whose last one carries a non-zero unused bit ("x" instead of "w").
    non_canonical = ACT[:-1] + _B64_ALPHABET[_B64_ALPHABET.index(ACT[-1]) | 1]
    add(
        "malformed-id-not-canonical",
        "act has non-zero unused bits in its last character (not the canonical encoding).",
        ACTIVE.sign(A, activation_claims(act=non_canonical)),
        error("MalformedToken"),
        method="verify_activation",
    )
    add(
        "malformed-payload-not-object",
        "The payload is a JSON array.",
        _ed_sign(ACTIVE, _header(L), [1, 2, 3]),
        error("MalformedToken"),
    )

    # --- signature and algorithm ----------------------------------------------------------
    head, payload, sig = good.split(".")
    flipped = _b64(
        bytes([base64.urlsafe_b64decode(sig + "==")[0] ^ 1])
        + base64.urlsafe_b64decode(sig + "==")[1:]
    )
    add(
        "invalid-signature",
        "One bit of the signature flipped.",
        f"{head}.{payload}.{flipped}",
        error("InvalidSignature"),
    )
    tampered = _seg(license_claims(tier="enterprise"))
    add(
        "invalid-signature-tampered-payload",
        "The payload changed after signing (tier upgraded).",
        f"{head}.{tampered}.{sig}",
        error("InvalidSignature"),
    )
    add(
        "invalid-signature-alg-none",
        'alg "none" with an empty signature.',
        f"{_seg({'alg': 'none', 'kid': ACTIVE.kid, 'typ': L})}.{payload}.",
        error("InvalidSignature"),
    )
    hs_input = f"{_seg({'alg': 'HS256', 'kid': ACTIVE.kid, 'typ': L})}.{payload}"
    mac = hmac.new(ACTIVE.public_jwk()["x"].encode(), hs_input.encode(), hashlib.sha256).digest()
    add(
        "invalid-signature-alg-hs256",
        "HS256 keyed with the public key's x (algorithm confusion).",
        f"{hs_input}.{_b64(mac)}",
        error("InvalidSignature"),
    )
    add(
        "invalid-signature-alg-rs256",
        "alg RS256.",
        _raw_token(_header(L) | {"alg": "RS256"}, license_claims(), _fake_signature("rs", 256)),
        error("InvalidSignature"),
    )
    add(
        "invalid-signature-alg-es256",
        "alg ES256.",
        _raw_token(_header(L) | {"alg": "ES256"}, license_claims(), _fake_signature("es", 64)),
        error("InvalidSignature"),
    )
    add(
        "unknown-key",
        "Signed by a key whose kid is not in the JWKS (e.g. revoked).",
        UNPUBLISHED.sign(L, license_claims()),
        error("UnknownKey"),
    )

    # --- who and what ----------------------------------------------------------------------
    add(
        "wrong-token-type-activation-as-license",
        "An activation token passed to verify_license.",
        ACTIVE.sign(A, activation_claims()),
        error("WrongTokenType"),
    )
    add(
        "wrong-token-type-license-as-activation",
        "A license token passed to verify_activation.",
        ACTIVE.sign(L, license_claims()),
        error("WrongTokenType"),
        method="verify_activation",
    )
    add(
        "wrong-issuer",
        "iss is another server.",
        ACTIVE.sign(L, license_claims(iss="https://licensing.other.example")),
        error("WrongIssuer"),
    )
    add(
        "wrong-product",
        "aud is another product.",
        ACTIVE.sign(L, license_claims(aud="acme-cad")),
        error("WrongProduct"),
    )
    add(
        "wrong-machine",
        "The activation token was issued for another fingerprint.",
        ACTIVE.sign(A, activation_claims()),
        error("WrongMachine"),
        method="verify_activation",
        fingerprint="some-other-machine",
    )

    # --- usage tokens (the answer to consuming a meter) -------------------------------------
    c = usage_claims()
    add(
        "valid-usage",
        "A usage token: 7 of 10 units of a monthly meter used; exp is the period's end.",
        ACTIVE.sign(U, c),
        ok(c),
        method="verify_usage",
    )
    c = usage_claims(period_end=None, exp=NOW + 3600, used=0, limit=50)
    add(
        "valid-usage-never-resets",
        "A usage token of a meter without a period (period_end null).",
        ACTIVE.sign(U, c),
        ok(c),
        method="verify_usage",
    )
    add(
        "wrong-token-type-usage-as-license",
        "A usage token passed to verify_license.",
        ACTIVE.sign(U, usage_claims()),
        error("WrongTokenType"),
    )
    add(
        "wrong-token-type-license-as-usage",
        "A license token passed to verify_usage.",
        ACTIVE.sign(L, license_claims()),
        error("WrongTokenType"),
        method="verify_usage",
    )
    add(
        "malformed-usage-missing-used",
        "A usage token without its used claim.",
        ACTIVE.sign(U, usage_claims(used=_DROP)),
        error("MalformedToken"),
        method="verify_usage",
    )
    add(
        "malformed-usage-negative-limit",
        "A usage token whose limit is below zero.",
        ACTIVE.sign(U, usage_claims(limit=-1)),
        error("MalformedToken"),
        method="verify_usage",
    )

    # --- time ------------------------------------------------------------------------------
    add(
        "expired",
        "exp passed more than the leeway ago.",
        ACTIVE.sign(L, license_claims(exp=NOW - 301)),
        error("Expired"),
    )
    add(
        "expired-activation-lease",
        "The activation lease (exp) ran out.",
        ACTIVE.sign(
            A, activation_claims(iat=NOW - 15 * 86400, nbf=NOW - 15 * 86400, exp=NOW - 86400)
        ),
        error("Expired"),
        method="verify_activation",
    )
    add(
        "expired-license",
        "license_expires_at has passed even though exp has not.",
        _ed_sign(ACTIVE, _header(L), license_claims(license_expires_at=NOW - 1000)),
        error("Expired"),
    )
    add(
        "not-yet-valid",
        "nbf is more than the leeway in the future.",
        ACTIVE.sign(L, license_claims(nbf=NOW + 3600)),
        error("NotYetValid"),
    )
    add(
        "clock-rollback",
        "iat is more than the leeway after now: the local clock is behind the server's.",
        ACTIVE.sign(L, license_claims(iat=NOW + 86400, nbf=NOW + 86400, exp=NOW + 15 * 86400)),
        error("ClockRollback"),
    )
    return vectors


# --- the certificate path ------------------------------------------------------------------

ROOT = _signer("licentia test vectors: root key")
NEXT_ROOT = _signer("licentia test vectors: next root key")
OTHER_ROOT = _signer("licentia test vectors: another deployment's root key")
CERTIFIED = _signer("licentia test vectors: certified key")
NEXT_CERTIFIED = _signer("licentia test vectors: key certified by the next root")
ATTACKER = _signer("licentia test vectors: attacker key")
_SEEDS[ATTACKER.kid] = "licentia test vectors: attacker key"
ROOT_DOCUMENT = {"keys": [ROOT.public_jwk()], "root_endorsements": []}
CERT_IAT = NOW - 30 * 86400
K, R, V = "key+jwt", "root+jwt", "key-revocations+jwt"


def certificate_claims(key: SigningKey, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": key.kid,
        "jwk": key.public_jwk(),
        "iat": CERT_IAT,
        "nbf": CERT_IAT - 300,
        "exp": CERT_IAT + 1826 * 86400,
    }
    claims.update(changes)
    return claims


def endorsement_claims(new_root: SigningKey) -> dict[str, Any]:
    return {"iss": ISSUER, "sub": new_root.kid, "jwk": new_root.public_jwk(), "iat": CERT_IAT}


def revocation_claims(seq: int, revoked: list[str]) -> dict[str, Any]:
    return {"iss": ISSUER, "iat": NOW - 1800, "seq": seq, "revoked": revoked}


def build_certificates() -> dict[str, dict[str, Any]]:
    """The certificate-path vectors by file name (under certificates/)."""
    L, A = "license+jwt", "activation+jwt"
    vectors: dict[str, dict[str, Any]] = {}

    def add(
        name: str,
        description: str,
        token: str,
        expected: dict[str, Any],
        *,
        certificates: list[tuple[str, str]],
        revocations: Sequence[tuple[str, str]] = (),
        endorsements: Sequence[tuple[str, str]] = (),
        method: str = "verify_license",
    ) -> None:
        vector: dict[str, Any] = {
            "description": description,
            "root": ROOT_DOCUMENT,
            "root_endorsements": [token for token, _ in endorsements],
            "key_certificates": [token for token, _ in certificates],
            "key_revocations": [token for token, _ in revocations],
            "verifier": {"product": PRODUCT, "issuer": ISSUER, "leeway_seconds": LEEWAY},
            "method": method,
            "token": token,
            "now": NOW,
        }
        if method == "verify_activation":
            vector["fingerprint"] = FINGERPRINT
        vector["expected"] = {
            "root_endorsements": [result for _, result in endorsements],
            "key_certificates": [result for _, result in certificates],
            "key_revocations": [result for _, result in revocations],
            **expected,
        }
        vectors[name] = vector

    def ok(claims: dict[str, Any]) -> dict[str, Any]:
        ids = {"license_id": LICENSE_ID, "organization_id": ORG_ID, "activation_id": None}
        if "act" in claims:
            ids["activation_id"] = ACTIVATION_ID
        return {"ok": claims, "ids": ids}

    def error(name: str) -> dict[str, Any]:
        return {"error": name}

    certificate = ROOT.sign(K, certificate_claims(CERTIFIED))
    c = license_claims()
    add(
        "valid-certificate",
        "A license token from a key that is in no JWKS, accepted through its certificate "
        "from the embedded root.",
        CERTIFIED.sign(L, c),
        ok(c),
        certificates=[(certificate, "ok")],
    )
    c = activation_claims()
    add(
        "valid-certificate-activation",
        "An activation token from a certified key.",
        CERTIFIED.sign(A, c),
        ok(c),
        certificates=[(certificate, "ok")],
        method="verify_activation",
    )
    c = license_claims()
    add(
        "valid-certificate-window-ended-at-iat",
        "The certificate's exp equals the token's iat (the window is inclusive) and is long "
        "past at now: the window bounds iat, never now.",
        CERTIFIED.sign(L, c),
        ok(c),
        certificates=[
            (ROOT.sign(K, certificate_claims(CERTIFIED, exp=c["iat"])), "ok"),
        ],
    )
    add(
        "certificate-other-root",
        "The certificate is signed by another deployment's root, which the product does not "
        "embed: the certificate is refused and the token's kid stays unknown.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[(OTHER_ROOT.sign(K, certificate_claims(CERTIFIED)), "UnknownKey")],
    )
    header, _, signature = certificate.split(".")
    forged_jwk = ATTACKER.public_jwk() | {"kid": CERTIFIED.kid}
    forged = _seg(certificate_claims(CERTIFIED) | {"jwk": forged_jwk})
    attacker_token = _ed_sign(ATTACKER, _header(L, CERTIFIED), license_claims())
    add(
        "certificate-tampered",
        "A genuine certificate whose jwk was replaced by an attacker's key (same kid), with "
        "the original signature: refused, so the attacker's token has no usable key.",
        attacker_token,
        error("UnknownKey"),
        certificates=[(f"{header}.{forged}.{signature}", "InvalidSignature")],
    )
    add(
        "certificate-wrong-type",
        "A root endorsement offered as a key certificate.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[(ROOT.sign(R, endorsement_claims(NEXT_ROOT)), "WrongTokenType")],
    )
    add(
        "certificate-wrong-issuer",
        "A certificate from this root for another issuer.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[
            (
                ROOT.sign(K, certificate_claims(CERTIFIED, iss="https://licensing.other.example")),
                "WrongIssuer",
            )
        ],
    )
    add(
        "certificate-window-expired",
        "The certificate ended (exp) an hour before the token was issued (iat): the key was "
        "no longer certified to sign it.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[
            (
                ROOT.sign(
                    K,
                    certificate_claims(
                        CERTIFIED, iat=NOW - 800 * 86400, nbf=NOW - 800 * 86400, exp=NOW - 7200
                    ),
                ),
                "ok",
            )
        ],
    )
    add(
        "certificate-window-not-started",
        "The certificate starts (nbf) after the token's iat.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[
            (ROOT.sign(K, certificate_claims(CERTIFIED, iat=NOW - 60, nbf=NOW - 60)), "ok")
        ],
    )
    add(
        "revoked-key",
        "The key is certified, but the root's revocation list withdraws it.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[(certificate, "ok")],
        revocations=[(ROOT.sign(V, revocation_claims(1, [CERTIFIED.kid])), "ok")],
    )
    add(
        "revoked-key-old-list-replayed",
        "After the list with seq 2 (which revokes the key), the older list with seq 1 (which "
        "does not) is offered again: it is ignored and the key stays revoked.",
        CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        certificates=[(certificate, "ok")],
        revocations=[
            (ROOT.sign(V, revocation_claims(2, [ATTACKER.kid, CERTIFIED.kid])), "ok"),
            (ROOT.sign(V, revocation_claims(1, [ATTACKER.kid])), "ignored"),
        ],
    )
    c = license_claims()
    add(
        "valid-certificate-revocation-of-another-key",
        "A revocation list that withdraws another key does not affect this one.",
        CERTIFIED.sign(L, c),
        ok(c),
        certificates=[(certificate, "ok")],
        revocations=[
            (ROOT.sign(V, revocation_claims(1, [ATTACKER.kid])), "ok"),
            (OTHER_ROOT.sign(V, revocation_claims(5, [CERTIFIED.kid])), "UnknownKey"),
        ],
    )
    c = license_claims()
    add(
        "valid-root-rotation",
        "The product embeds the first root only. The next root, endorsed by it (root+jwt), "
        "certifies the key that signed the token.",
        NEXT_CERTIFIED.sign(L, c),
        ok(c),
        endorsements=[(ROOT.sign(R, endorsement_claims(NEXT_ROOT)), "ok")],
        certificates=[(NEXT_ROOT.sign(K, certificate_claims(NEXT_CERTIFIED)), "ok")],
    )
    add(
        "root-endorsement-untrusted",
        "A root endorsed by a root the product does not trust: the endorsement is refused, "
        "and so is everything the endorsed root signs.",
        NEXT_CERTIFIED.sign(L, license_claims()),
        error("UnknownKey"),
        endorsements=[(OTHER_ROOT.sign(R, endorsement_claims(NEXT_ROOT)), "UnknownKey")],
        certificates=[(NEXT_ROOT.sign(K, certificate_claims(NEXT_CERTIFIED)), "UnknownKey")],
    )
    return vectors


def render(vector: dict[str, Any]) -> str:
    return json.dumps(vector, indent=2, ensure_ascii=True) + "\n"


CERTIFICATES = HERE / "certificates"


def main(argv: list[str]) -> int:
    expected = {f"{name}.json": render(v) for name, v in build().items()}
    expected |= {f"certificates/{name}.json": render(v) for name, v in build_certificates().items()}
    existing = {p.name for p in HERE.glob("*.json")}
    existing |= {f"certificates/{p.name}" for p in CERTIFICATES.glob("*.json")}
    if "--check" in argv:
        stale = sorted(
            name
            for name, text in expected.items()
            if not (HERE / name).exists() or (HERE / name).read_text() != text
        )
        extra = sorted(existing - set(expected))
        if stale or extra:
            print(f"stale vectors: {stale}; unexpected files: {extra}")
            return 1
        print(f"{len(expected)} vectors up to date")
        return 0
    for name in existing - set(expected):
        (HERE / name).unlink()
    CERTIFICATES.mkdir(exist_ok=True)
    for name, text in expected.items():
        (HERE / name).write_text(text)
    print(f"wrote {len(expected)} vectors to {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

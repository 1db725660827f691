"""Licentia tokens are standard JWTs: PyJWT and the npm `jose` package verify them.

The jose test installs `jose` with npm into a cache directory (~/.cache/licentia-tests,
or $LICENTIA_TEST_CACHE) on first use. Where node or npm is missing, or npm cannot install
(no registry), it is skipped with the reason; CI sets LICENTIA_REQUIRE_INTEROP=1, which
turns any such skip into a failure, so there it always runs.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import jwt
import pytest

from keys.certificates import issue_key_certificate
from keys.crypto import (
    SigningKey,
    compute_kid,
    generate_private_key,
    raw_private_key,
    raw_public_key,
)
from keys.tokens import TokenSubject, issue_activation_token, issue_license_token

HERE = Path(__file__).resolve().parent
LICENSE_ID = "7b5d0c1e-1111-4222-8333-944455566677"
ORG_ID = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
ACTIVATION_ID = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
VECTOR_DIR = HERE.parent / "vectors"
VECTORS = {p.stem: json.loads(p.read_text()) for p in sorted(VECTOR_DIR.glob("*.json"))}
CERTIFICATE_VECTORS = {
    p.stem: json.loads(p.read_text()) for p in sorted((VECTOR_DIR / "certificates").glob("*.json"))
}
JOSE_SPEC = "jose@6"

# Rejections that any standard JOSE library must also make (the others, such as an extra
# header field, a boolean where an integer belongs or the machine fingerprint, are
# Licentia policy that generic libraries do not know about).
STANDARD_REJECTIONS = {
    "invalid-signature",
    "invalid-signature-tampered-payload",
    "invalid-signature-alg-none",
    "invalid-signature-alg-hs256",
    "invalid-signature-alg-rs256",
    "invalid-signature-alg-es256",
    "unknown-key",
    "wrong-issuer",
    "wrong-product",
    "expired",
    "expired-activation-lease",
    "not-yet-valid",
}
ACCEPTED = sorted(name for name, v in VECTORS.items() if "ok" in v["expected"])
TYP = {
    "verify_license": "license+jwt",
    "verify_activation": "activation+jwt",
    "verify_usage": "usage+jwt",
}


def _fresh_tokens() -> tuple[dict[str, Any], dict[str, str]]:
    key = generate_private_key()
    signer = SigningKey.from_raw(compute_kid(raw_public_key(key)), raw_private_key(key))
    subject = TokenSubject(
        license_id=LICENSE_ID,
        organization_id=ORG_ID,
        product="acme-ide",
        tier="enterprise",
        features={"sso": True, "seats": 250, "ratio": 1.5, "edition": "ultimate"},
        max_activations=10,
        license_expires_at=datetime.now(UTC) + timedelta(days=365),
    )
    now = datetime.now(UTC)
    issuer = "https://licensing.example.com"
    license_token = issue_license_token(
        signer, subject, issuer=issuer, now=now, lifetime=timedelta(hours=1), nonce="n1"
    ).token
    activation_token = issue_activation_token(
        signer,
        subject,
        issuer=issuer,
        activation_id=ACTIVATION_ID,
        fingerprint="fp-9",
        now=now,
        lease=timedelta(days=7),
    ).token
    jwks = {"keys": [signer.public_jwk()]}
    return jwks, {"license+jwt": license_token, "activation+jwt": activation_token}


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _id(value: str) -> str:
    """The id claim of a UUID: its 16 bytes as unpadded base64url."""
    return base64.urlsafe_b64encode(uuid.UUID(value).bytes).rstrip(b"=").decode()


# --- PyJWT -------------------------------------------------------------------------------


def _pyjwt_decode(vector: dict[str, Any]) -> dict[str, Any]:
    header = jwt.get_unverified_header(vector["token"])
    keys = {k["kid"]: k for k in vector["jwks"]["keys"]}
    if header.get("kid") not in keys:
        raise jwt.InvalidKeyError("unknown kid")
    key = jwt.PyJWK(keys[header["kid"]]).key
    now = vector["now"]

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.fromtimestamp(now, tz)

    original = jwt.api_jwt.datetime
    jwt.api_jwt.datetime = FrozenDatetime  # type: ignore[misc]
    try:
        return jwt.decode(
            vector["token"],
            key,
            algorithms=["EdDSA"],
            audience=vector["verifier"]["product"],
            issuer=vector["verifier"]["issuer"],
            leeway=vector["verifier"]["leeway_seconds"],
            options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]},
        )
    finally:
        jwt.api_jwt.datetime = original  # type: ignore[misc]


@pytest.mark.parametrize("name", ACCEPTED)
def test_pyjwt_accepts_valid_vectors(name):
    vector = VECTORS[name]
    if jwt.get_unverified_header(vector["token"])["alg"] == "Ed25519":
        pytest.skip("PyJWT does not know the RFC 9864 name Ed25519 (the server signs EdDSA)")
    assert _pyjwt_decode(vector) == vector["expected"]["ok"]


@pytest.mark.parametrize("name", sorted(STANDARD_REJECTIONS | {"clock-rollback"}))
def test_pyjwt_rejects_invalid_vectors(name):
    with pytest.raises(jwt.PyJWTError):
        _pyjwt_decode(VECTORS[name])


def test_pyjwt_verifies_a_fresh_token():
    jwks, tokens = _fresh_tokens()
    key = jwt.PyJWK(jwks["keys"][0]).key
    for typ, token in tokens.items():
        assert jwt.get_unverified_header(token) == {
            "alg": "EdDSA",
            "kid": jwks["keys"][0]["kid"],
            "typ": typ,
        }
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            audience="acme-ide",
            issuer="https://licensing.example.com",
        )
        assert claims["features"] == {
            "sso": True,
            "seats": 250,
            "ratio": 1.5,
            "edition": "ultimate",
        }
        assert (claims["sub"], claims["org"]) == (_id(LICENSE_ID), _id(ORG_ID))
        assert claims.get("act") == (_id(ACTIVATION_ID) if typ == "activation+jwt" else None)


# --- npm jose under Node.js ----------------------------------------------------------------


def _cannot_run(reason: str) -> NoReturn:
    if os.environ.get("LICENTIA_REQUIRE_INTEROP") == "1":
        pytest.fail(f"{reason} (LICENTIA_REQUIRE_INTEROP=1)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def jose_dir() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _cannot_run("node and npm are required for the jose interop test (not found on PATH)")
    cache = Path(os.environ.get("LICENTIA_TEST_CACHE", Path.home() / ".cache" / "licentia-tests"))
    target = cache / "jose-6"
    if not (target / "node_modules" / "jose" / "package.json").exists():
        target.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", JOSE_SPEC],
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            _cannot_run(f"npm install {JOSE_SPEC} timed out after 300 s")
        if result.returncode != 0:
            first = (result.stderr.strip().splitlines() or ["no output"])[0]
            _cannot_run(f"npm could not install {JOSE_SPEC}: {first}")
    shutil.copyfile(HERE / "verify_with_jose.mjs", target / "verify_with_jose.mjs")
    return target


def _jose(jose_dir: Path, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["node", str(jose_dir / "verify_with_jose.mjs")],
        input=json.dumps({"cases": cases}),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=jose_dir,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _case(vector: dict[str, Any]) -> dict[str, Any]:
    return {
        "jwks": vector["jwks"],
        "token": vector["token"],
        "product": vector["verifier"]["product"],
        "issuer": vector["verifier"]["issuer"],
        "typ": TYP[vector["method"]],
        "now": vector["now"],
        "leeway": vector["verifier"]["leeway_seconds"],
    }


def test_jose_agrees_with_the_vectors(jose_dir):
    names = (
        ACCEPTED
        + sorted(STANDARD_REJECTIONS)
        + [
            "wrong-token-type-activation-as-license",
            "wrong-token-type-license-as-activation",
        ]
    )
    cases = [_case(VECTORS[n]) for n in names]
    for case in cases:
        if json.loads(_b64d(case["token"].split(".")[0]))["alg"] == "Ed25519":
            # jose matches a token's alg against the JWK's "alg" member, so a JWKS published
            # with alg EdDSA only serves EdDSA tokens (see docs/token-format.md, "Algorithm").
            case["jwks"] = {
                "keys": [
                    {k: v for k, v in key.items() if k != "alg"} for key in case["jwks"]["keys"]
                ]
            }
    results = dict(zip(names, _jose(jose_dir, cases), strict=True))
    for name in ACCEPTED:
        assert "ok" in results[name], f"jose refused {name}: {results[name]}"
        assert results[name]["ok"] == VECTORS[name]["expected"]["ok"], name
        # The TypeScript id decoding of docs/token-format.md gives the canonical UUIDs.
        assert results[name]["ids"] == VECTORS[name]["expected"]["ids"], name
    for name in names[len(ACCEPTED) :]:
        assert "error" in results[name], f"jose accepted {name}"


def test_jose_verifies_fresh_tokens(jose_dir):
    jwks, tokens = _fresh_tokens()
    now = int(datetime.now(UTC).timestamp())
    cases = [
        {
            "jwks": jwks,
            "token": token,
            "product": "acme-ide",
            "issuer": "https://licensing.example.com",
            "typ": typ,
            "now": now,
            "leeway": 300,
        }
        for typ, token in tokens.items()
    ]
    results = _jose(jose_dir, cases)
    assert all("ok" in r for r in results), results
    assert results[0]["header"] == {
        "alg": "EdDSA",
        "kid": jwks["keys"][0]["kid"],
        "typ": "license+jwt",
    }
    assert results[1]["ok"]["act"] == _id(ACTIVATION_ID)
    assert results[1]["ok"]["features"]["seats"] == 250
    assert results[0]["ids"] == {
        "license_id": LICENSE_ID,
        "organization_id": ORG_ID,
        "activation_id": None,
    }
    assert results[1]["ids"] == {
        "license_id": LICENSE_ID,
        "organization_id": ORG_ID,
        "activation_id": ACTIVATION_ID,
    }


# --- the certificate path with jose ---------------------------------------------------------

# The certificate-path vectors without endorsements or revocation lists: a product with a
# generic JOSE library checks the certificate under the root, then the token under the key.
CERTIFICATE_ONLY = sorted(
    name
    for name, v in CERTIFICATE_VECTORS.items()
    if not v["root_endorsements"] and not v["key_revocations"]
)


def test_jose_follows_the_certificate_path_of_the_vectors(jose_dir):
    assert {"valid-certificate", "certificate-tampered", "certificate-other-root"} <= set(
        CERTIFICATE_ONLY
    )
    cases = []
    for name in CERTIFICATE_ONLY:
        vector = CERTIFICATE_VECTORS[name]
        case = _case({**vector, "jwks": None})
        del case["jwks"]
        cases.append({**case, "root": vector["root"], "certificates": vector["key_certificates"]})
    results = dict(zip(CERTIFICATE_ONLY, _jose(jose_dir, cases), strict=True))
    for name in CERTIFICATE_ONLY:
        expected, result = CERTIFICATE_VECTORS[name]["expected"], results[name]
        assert result["certificates"] == expected["key_certificates"], (name, result)
        if "ok" in expected:
            assert result.get("ok") == expected["ok"], (name, result)
            assert result["ids"] == expected["ids"], name
        else:
            assert result.get("error") == expected["error"], (name, result)


def test_jose_verifies_a_fresh_certificate_and_the_token_it_certifies(jose_dir):
    jwks, tokens = _fresh_tokens()
    root_key = generate_private_key()
    root = SigningKey.from_raw(compute_kid(raw_public_key(root_key)), raw_private_key(root_key))
    now = datetime.now(UTC)
    certificate = issue_key_certificate(
        root,
        jwks["keys"][0],
        issuer="https://licensing.example.com",
        now=now,
        not_before=now - timedelta(minutes=5),
        expires_at=now + timedelta(days=1826),
    )
    cases = [
        {
            "root": {"keys": [root.public_jwk()], "root_endorsements": []},
            "certificates": [certificate],
            "token": token,
            "product": "acme-ide",
            "issuer": "https://licensing.example.com",
            "typ": typ,
            "now": int(now.timestamp()),
            "leeway": 300,
        }
        for typ, token in tokens.items()
    ]
    # The root itself is no signing key: a token checked against the root alone is refused.
    cases.append({**cases[0], "certificates": []})
    results = _jose(jose_dir, cases)
    assert [r["certificates"] for r in results] == [["ok"], ["ok"], []]
    assert "ok" in results[0] and "ok" in results[1], results
    assert results[1]["ids"]["activation_id"] == ACTIVATION_ID
    assert results[2]["error"] == "UnknownKey"

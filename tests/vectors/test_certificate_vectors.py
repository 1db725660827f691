"""The certificate-path vectors (tests/vectors/certificates/) against a reference checker
written from docs/token-format.md, "Root of trust", with `cryptography` only; and the files
are what the generator writes.

The reference is deliberately small and literal. It is not the product verifier (that lives
in verifier/), but it fixes the meaning of every vector so that any implementation, the
Python verifier included, can be held to the same files."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

HERE = Path(__file__).resolve().parent
VECTORS = sorted((HERE / "certificates").glob("*.json"))
KEY_CERTIFICATE, ROOT_ENDORSEMENT, KEY_REVOCATIONS = (
    "key+jwt",
    "root+jwt",
    "key-revocations+jwt",
)
TOKEN_TYPES = {"license+jwt", "activation+jwt"}
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class Refused(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _b64(segment: str) -> bytes:
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise Refused("MalformedToken")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise Refused("MalformedToken") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != segment:
        raise Refused("MalformedToken")
    return raw


def _json_object(raw: bytes) -> dict[str, Any]:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise Refused("MalformedToken")
        return dict(pairs)

    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise Refused("MalformedToken") from None
    if not isinstance(value, dict):
        raise Refused("MalformedToken")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _public_key(jwk: Any) -> Ed25519PublicKey:
    """An Ed25519 public JWK as a certificate or endorsement carries it: else malformed."""
    if not isinstance(jwk, dict) or "d" in jwk:
        raise Refused("MalformedToken")
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise Refused("MalformedToken")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "EdDSA") not in ("EdDSA", "Ed25519"):
        raise Refused("MalformedToken")
    x = jwk.get("x")
    if not isinstance(x, str) or not isinstance(jwk.get("kid"), str):
        raise Refused("MalformedToken")
    raw = _b64(x)
    if len(raw) != 32:
        raise Refused("MalformedToken")
    return Ed25519PublicKey.from_public_bytes(raw)


def _raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


class ReferenceTrust:
    """The trust store of a product that embeds the root (docs/token-format.md)."""

    def __init__(self, root_document: dict[str, Any], *, issuer: str) -> None:
        self.issuer = issuer
        self.roots: dict[str, Ed25519PublicKey] = {}
        for jwk in root_document["keys"]:
            self.roots[jwk["kid"]] = _public_key(jwk)
        self.keys: dict[str, tuple[Ed25519PublicKey, list[tuple[int, int]]]] = {}
        self.seq = 0
        self.revoked: set[str] = set()
        for endorsement in root_document.get("root_endorsements", []):
            self.add_root_endorsement(endorsement)

    def _open(self, token: str, typ: str) -> dict[str, Any]:
        """Steps 1-8 of "Checking trust material": shape, alg, typ, a trusted root, the
        signature, then the claims object and iss."""
        if not isinstance(token, str) or len(token) > 16384 or not token.isascii():
            raise Refused("MalformedToken")
        parts = token.split(".")
        if len(parts) != 3:
            raise Refused("MalformedToken")
        header = _json_object(_b64(parts[0]))
        if set(header) != {"alg", "typ", "kid"}:
            raise Refused("MalformedToken")
        if header["alg"] not in ("EdDSA", "Ed25519"):
            raise Refused("InvalidSignature")
        if header["typ"] != typ:
            raise Refused("WrongTokenType")
        if not isinstance(header["kid"], str):
            raise Refused("MalformedToken")
        root = self.roots.get(header["kid"])
        if root is None:
            raise Refused("UnknownKey")
        signature = _b64(parts[2])
        if len(signature) != 64:
            raise Refused("MalformedToken")
        try:
            root.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"))
        except CryptoInvalidSignature:
            raise Refused("InvalidSignature") from None
        claims = _json_object(_b64(parts[1]))
        if not isinstance(claims.get("iss"), str) or not _is_int(claims.get("iat")):
            raise Refused("MalformedToken")
        return claims

    def _check_iss(self, claims: dict[str, Any]) -> None:
        if claims["iss"] != self.issuer:
            raise Refused("WrongIssuer")

    def add_root_endorsement(self, token: str) -> None:
        claims = self._open(token, ROOT_ENDORSEMENT)
        key = _public_key(claims.get("jwk"))
        if claims.get("sub") != claims["jwk"]["kid"]:
            raise Refused("MalformedToken")
        self._check_iss(claims)
        known = self.roots.get(claims["sub"])
        if known is not None and _raw(known) != _raw(key):
            raise Refused("MalformedToken")
        self.roots[claims["sub"]] = key

    def add_key_certificate(self, token: str) -> None:
        claims = self._open(token, KEY_CERTIFICATE)
        key = _public_key(claims.get("jwk"))
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if claims.get("sub") != claims["jwk"]["kid"] or not (_is_int(nbf) and _is_int(exp)):
            raise Refused("MalformedToken")
        if nbf > exp:
            raise Refused("MalformedToken")
        self._check_iss(claims)
        known = self.keys.get(claims["sub"])
        if known is not None and _raw(known[0]) != _raw(key):
            raise Refused("MalformedToken")
        windows = known[1] if known else []
        self.keys[claims["sub"]] = (key, [*windows, (nbf, exp)])

    def add_key_revocations(self, token: str) -> str:
        claims = self._open(token, KEY_REVOCATIONS)
        seq, revoked = claims.get("seq"), claims.get("revoked")
        if not (_is_int(seq) and seq >= 1) or not isinstance(revoked, list):
            raise Refused("MalformedToken")
        if not all(isinstance(kid, str) for kid in revoked):
            raise Refused("MalformedToken")
        self._check_iss(claims)
        if seq <= self.seq:
            return "ignored"
        self.seq, self.revoked = seq, set(revoked)
        return "ok"

    def key_for(self, token: str) -> tuple[Ed25519PublicKey, list[tuple[int, int]]]:
        """Step 6 of the token algorithm, root mode: the certified, unrevoked key."""
        header = _json_object(_b64(token.split(".")[0]))
        kid = header.get("kid")
        if kid in self.revoked or kid not in self.keys:
            raise Refused("UnknownKey")
        return self.keys[kid]


def _verify_token(trust: ReferenceTrust, vector: dict[str, Any]) -> dict[str, Any]:
    token = vector["token"]
    options = vector["verifier"]
    now, leeway = vector["now"], options["leeway_seconds"]
    head, payload, signature = token.split(".")
    header = _json_object(_b64(head))
    if set(header) != {"alg", "typ", "kid"} or header["typ"] not in TOKEN_TYPES:
        raise Refused("MalformedToken")
    key, windows = trust.key_for(token)
    expected_typ = "activation+jwt" if vector["method"] == "verify_activation" else "license+jwt"
    if header["typ"] != expected_typ:
        raise Refused("WrongTokenType")
    try:
        key.verify(_b64(signature), f"{head}.{payload}".encode("ascii"))
    except CryptoInvalidSignature:
        raise Refused("InvalidSignature") from None
    claims = _json_object(_b64(payload))
    if not any(nbf <= claims["iat"] <= exp for nbf, exp in windows):
        raise Refused("UnknownKey")  # no certificate of this key covers the token's iat
    if claims["iss"] != options["issuer"]:
        raise Refused("WrongIssuer")
    if claims["aud"] != options["product"]:
        raise Refused("WrongProduct")
    if now < claims["nbf"] - leeway:
        raise Refused("NotYetValid")
    if now >= claims["exp"] + leeway:
        raise Refused("Expired")
    return claims


def _outcome(call: Any) -> str:
    try:
        result = call()
    except Refused as refused:
        return refused.name
    return result if isinstance(result, str) else "ok"


def _generator():
    spec = importlib.util.spec_from_file_location("licentia_vector_generator", HERE / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_certificate_vectors_are_what_the_generator_writes():
    generator = _generator()
    built = {name: generator.render(v) for name, v in generator.build_certificates().items()}
    assert {p.stem: p.read_text() for p in VECTORS} == built, (
        "run: uv run python tests/vectors/generate.py"
    )


def test_the_required_cases_are_covered():
    names = {p.stem for p in VECTORS}
    assert {
        "valid-certificate",
        "certificate-other-root",
        "certificate-window-expired",
        "revoked-key",
        "valid-root-rotation",
    } <= names


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_certificate_vector(path):
    vector = json.loads(path.read_text())
    expected = vector["expected"]
    trust = ReferenceTrust(vector["root"], issuer=vector["verifier"]["issuer"])
    results = {
        "root_endorsements": [
            _outcome(lambda t=t: trust.add_root_endorsement(t)) for t in vector["root_endorsements"]
        ],
        "key_certificates": [
            _outcome(lambda t=t: trust.add_key_certificate(t)) for t in vector["key_certificates"]
        ],
        "key_revocations": [
            _outcome(lambda t=t: trust.add_key_revocations(t)) for t in vector["key_revocations"]
        ],
    }
    for field, outcomes in results.items():
        assert outcomes == expected[field], field
    if "error" in expected:
        with pytest.raises(Refused) as info:
            _verify_token(trust, vector)
        assert info.value.name == expected["error"]
    else:
        assert _verify_token(trust, vector) == expected["ok"]

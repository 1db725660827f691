"""keys.crypto: key material, thumbprints, encryption at rest, signing."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import pickle

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from keys.crypto import (
    KeyDecryptionError,
    SigningKey,
    compute_kid,
    decrypt_private_key,
    encrypt_private_key,
    generate_private_key,
    new_kek_text,
    parse_kek,
    public_jwk,
    raw_private_key,
    raw_public_key,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_raw_keys_are_32_bytes():
    key = generate_private_key()
    assert len(raw_public_key(key)) == 32 and len(raw_private_key(key)) == 32


def test_kid_is_the_rfc7638_thumbprint_truncated_to_12_bytes():
    # RFC 8037 appendix A.3: the thumbprint of the example Ed25519 key is
    # kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k; the kid is its first 12 bytes, which are
    # exactly its first 16 base64url characters.
    x = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    assert compute_kid(x) == "kPrK_qmxVWaYVA9w"
    key = generate_private_key()
    raw = raw_public_key(key)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": b64(raw)}, separators=(",", ":"))
    thumbprint = hashlib.sha256(canonical.encode()).digest()
    assert compute_kid(raw) == b64(thumbprint[:12])
    assert len(compute_kid(raw)) == 16 and b64(thumbprint).startswith(compute_kid(raw))
    with pytest.raises(ValueError):
        compute_kid(b"short")


def test_public_jwk_has_exactly_the_public_members():
    key = generate_private_key()
    raw = raw_public_key(key)
    jwk = public_jwk(raw, compute_kid(raw))
    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64(raw),
        "kid": compute_kid(raw),
        "use": "sig",
        "alg": "EdDSA",
    }


def test_parse_kek_accepts_base64url_and_base64():
    raw = bytes(range(256))[-32:]  # contains bytes that encode to - _ + /
    assert parse_kek(b64(raw)) == raw
    assert parse_kek(base64.urlsafe_b64encode(raw).decode()) == raw
    assert parse_kek(base64.b64encode(raw).decode()) == raw
    assert parse_kek(f"  {base64.b64encode(raw).decode()}\n") == raw
    assert len(parse_kek(new_kek_text())) == 32
    assert new_kek_text() != new_kek_text()


@pytest.mark.parametrize(
    "text", ["", "   ", "not base64!", b64(b"x" * 31), b64(b"x" * 33), "ab-c+d" * 8, "a" * 64]
)
def test_parse_kek_rejects_bad_values_without_echoing_them(text):
    with pytest.raises(ValueError) as info:
        parse_kek(text)
    message = str(info.value)
    assert "LICENTIA_KEY_ENCRYPTION_KEY" in message
    if text.strip():
        assert text.strip() not in message


@settings(max_examples=25, deadline=None)
@given(kid=st.text(min_size=1, max_size=60), kek=st.binary(min_size=32, max_size=32))
def test_encryption_round_trip(kid, kek):
    private_raw = raw_private_key(generate_private_key())
    blob = encrypt_private_key(kek, private_raw, kid)
    assert len(blob) == 12 + 32 + 16
    assert private_raw not in blob
    assert decrypt_private_key(kek, blob, kid) == private_raw


def test_nonces_are_random():
    kek = parse_kek(new_kek_text())
    raw = raw_private_key(generate_private_key())
    assert encrypt_private_key(kek, raw, "k") != encrypt_private_key(kek, raw, "k")


def test_wrong_kek_wrong_kid_and_tampering_fail_closed():
    kek, other = parse_kek(new_kek_text()), parse_kek(new_kek_text())
    raw = raw_private_key(generate_private_key())
    blob = encrypt_private_key(kek, raw, "kid-1")
    attempts = [(other, blob, "kid-1"), (kek, blob, "kid-2"), (kek, blob[:20], "kid-1")]
    for index in (0, 12, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[index] ^= 1
        attempts.append((kek, bytes(tampered), "kid-1"))
    for k, b, kid in attempts:
        with pytest.raises(KeyDecryptionError) as info:
            decrypt_private_key(k, b, kid)
        assert raw.hex() not in str(info.value) and b64(raw) not in str(info.value)
        assert k.hex() not in str(info.value)
    with pytest.raises(ValueError):
        encrypt_private_key(b"short", raw, "kid")


def test_signing_key_hides_key_material():
    key = generate_private_key()
    raw, pub = raw_private_key(key), raw_public_key(key)
    kid = compute_kid(pub)
    signer = SigningKey.from_raw(kid, raw)
    for text in (repr(signer), str(signer), f"{signer}", f"{signer!r}"):
        assert kid in text
        for secret in (raw.hex(), b64(raw), repr(raw)):
            assert secret not in text
    public_attrs = {name: getattr(signer, name) for name in dir(signer) if not name.startswith("_")}
    for value in public_attrs.values():
        assert value != raw
    with pytest.raises(TypeError):
        pickle.dumps(signer)
    with pytest.raises(TypeError):
        copy.deepcopy(signer)
    assert signer.public_raw == pub and signer.public_jwk()["kid"] == kid


def test_sign_produces_exactly_alg_typ_kid_headers():
    key = generate_private_key()
    kid = compute_kid(raw_public_key(key))
    signer = SigningKey.from_raw(kid, raw_private_key(key))
    token = signer.sign("activation+jwt", {"sub": "x", "iat": 1})
    header_segment = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    assert header == {"alg": "EdDSA", "typ": "activation+jwt", "kid": kid}
    claims = jwt.decode(token, key.public_key(), algorithms=["EdDSA"])
    assert claims == {"sub": "x", "iat": 1}
    signature = base64.urlsafe_b64decode(token.split(".")[2] + "==")
    assert isinstance(key.public_key(), Ed25519PublicKey)
    key.public_key().verify(signature, token.rsplit(".", 1)[0].encode())

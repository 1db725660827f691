"""Ed25519 key material, its encryption at rest, and token signing. Pure: no I/O, no DB.

Private keys are kept inside ``SigningKey`` objects and encrypted blobs; no function here
puts key bytes into an exception message, a ``repr`` or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.hazmat.primitives.serialization import PublicFormat as _PublicFormat

__all__ = [
    "KeyDecryptionError",
    "SigningKey",
    "b64url_encode",
    "compute_kid",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_private_key",
    "new_kek_text",
    "parse_kek",
    "private_key_file",
    "public_jwk",
    "raw_private_key",
    "raw_public_key",
    "read_private_key_file",
]

KEK_BYTES = 32
NONCE_BYTES = 12
_GCM_TAG_BYTES = 16
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/")


class KeyDecryptionError(Exception):
    """A private key could not be decrypted: wrong key-encryption key or altered data."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, _PublicFormat.Raw)


def raw_private_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


KID_BYTES = 12


def compute_kid(public_raw: bytes) -> str:
    """The key id: the RFC 7638 JWK thumbprint (SHA-256) of the Ed25519 public key, truncated
    to its first 12 bytes, as unpadded base64url (16 characters).

    12 bytes are a whole number of base64 groups, so the kid is also the first 16 characters
    of the full 43-character thumbprint. A kid only has to be unique within the key set a
    verifier embeds (which refuses two different keys under one kid), so 96 bits is ample;
    the shorter kid keeps every token 27 characters smaller.
    """
    if len(public_raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    # Required members only, in lexicographic order, no whitespace (RFC 7638 section 3).
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(public_raw)},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest()[:KID_BYTES])


def public_jwk(public_raw: bytes, kid: str) -> dict[str, str]:
    """The RFC 7517 JWK that verifiers embed (no private member, ever)."""
    if len(public_raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(public_raw),
        "kid": kid,
        "use": "sig",
        "alg": "EdDSA",
    }


def private_key_file(private_raw: bytes) -> dict[str, str]:
    """The JWK (RFC 8037) of a private key, for a file kept off the server (an offline
    root): ``kty``, ``crv``, ``x``, ``d`` and ``kid``. The caller writes it somewhere safe."""
    if len(private_raw) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    public_raw = raw_public_key(Ed25519PrivateKey.from_private_bytes(private_raw))
    kid = compute_kid(public_raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(public_raw),
        "d": b64url_encode(private_raw),
        "kid": kid,
    }


def read_private_key_file(document: object) -> tuple[str, bytes]:
    """Inverse of ``private_key_file``: ``(kid, private_raw)`` after checking that ``d``,
    ``x`` and ``kid`` belong together. ``ValueError`` (never echoing key bytes) otherwise."""
    if not isinstance(document, dict):
        raise ValueError("not a private key file: expected a JSON object (a JWK)")
    if document.get("kty") != "OKP" or document.get("crv") != "Ed25519":
        raise ValueError("not an Ed25519 private key (kty OKP, crv Ed25519)")
    members = {}
    for name in ("x", "d", "kid"):
        value = document.get(name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"the private key file has no {name!r}")
        members[name] = value
    try:
        private_raw = base64.urlsafe_b64decode(members["d"] + "=" * (-len(members["d"]) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("the private key file's 'd' is not base64url") from None
    if len(private_raw) != 32:
        raise ValueError("the private key file's 'd' is not a 32-byte Ed25519 key")
    public_raw = raw_public_key(Ed25519PrivateKey.from_private_bytes(private_raw))
    if b64url_encode(public_raw) != members["x"]:
        raise ValueError("the private key file's 'd' does not belong to its 'x'")
    if compute_kid(public_raw) != members["kid"]:
        raise ValueError("the private key file's 'kid' is not the thumbprint of its key")
    return members["kid"], private_raw


def parse_kek(text: str) -> bytes:
    """Decode LICENTIA_KEY_ENCRYPTION_KEY: base64url or base64 (padding optional) of 32 bytes.

    The error message describes what is wrong, never the value itself.
    """
    if not isinstance(text, str):
        raise ValueError("LICENTIA_KEY_ENCRYPTION_KEY must be a string")
    value = "".join(text.split())
    if not value:
        raise ValueError(
            "LICENTIA_KEY_ENCRYPTION_KEY is empty; generate one with: "
            'python -c "import base64,os; print(base64.urlsafe_b64encode(os.urandom(32))'
            '.decode())"'
        )
    value = value.rstrip("=")
    url_safe = "-" in value or "_" in value
    standard = "+" in value or "/" in value
    if set(value) - _B64_CHARS or (url_safe and standard):
        raise ValueError(
            "LICENTIA_KEY_ENCRYPTION_KEY is not base64/base64url text "
            "(expected the encoding of 32 random bytes)"
        )
    try:
        key = base64.urlsafe_b64decode(
            value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4)
        )
    except (binascii.Error, ValueError):
        raise ValueError(
            "LICENTIA_KEY_ENCRYPTION_KEY is not valid base64/base64url "
            "(expected the encoding of 32 random bytes)"
        ) from None
    if len(key) != KEK_BYTES:
        raise ValueError(
            f"LICENTIA_KEY_ENCRYPTION_KEY decodes to {len(key)} bytes; it must be exactly "
            f"{KEK_BYTES} bytes (43 base64url characters)"
        )
    return key


def new_kek_text() -> str:
    """A fresh key-encryption key: 32 random bytes as unpadded base64url."""
    return b64url_encode(os.urandom(KEK_BYTES))


def _aesgcm(kek: bytes) -> AESGCM:
    if not isinstance(kek, bytes) or len(kek) != KEK_BYTES:
        raise ValueError(f"the key-encryption key must be {KEK_BYTES} bytes")
    return AESGCM(kek)


def encrypt_private_key(kek: bytes, private_raw: bytes, kid: str) -> bytes:
    """AES-256-GCM with a random 96-bit nonce and the kid as associated data.

    Returns ``nonce || ciphertext || tag``. Binding the kid means a blob moved to another
    key's row does not decrypt.
    """
    if len(private_raw) != 32:
        raise ValueError("an Ed25519 private key is 32 bytes")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _aesgcm(kek).encrypt(nonce, private_raw, kid.encode("utf-8"))


def decrypt_private_key(kek: bytes, blob: bytes, kid: str) -> bytes:
    """Inverse of ``encrypt_private_key``; ``KeyDecryptionError`` on a wrong KEK or tampering."""
    aead = _aesgcm(kek)
    blob = bytes(blob)
    if len(blob) < NONCE_BYTES + _GCM_TAG_BYTES:
        raise KeyDecryptionError(f"encrypted private key for kid {kid!r} is truncated")
    try:
        private_raw = aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], kid.encode("utf-8"))
    except InvalidTag:
        raise KeyDecryptionError(
            f"cannot decrypt the private key for kid {kid!r}: wrong key-encryption key "
            "(LICENTIA_KEY_ENCRYPTION_KEY) or altered data"
        ) from None
    if len(private_raw) != 32:
        raise KeyDecryptionError(f"decrypted private key for kid {kid!r} has the wrong size")
    return private_raw


class SigningKey:
    """A decrypted Ed25519 private key held in memory, with its kid.

    ``repr`` and ``str`` show only the kid; the key itself is reachable only through
    ``sign``. Instances refuse to be pickled or copied so they cannot leak by accident.
    """

    __slots__ = ("__key", "_headers", "kid", "public_raw")

    kid: str
    public_raw: bytes

    def __init__(self, kid: str, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("private_key must be an Ed25519PrivateKey")
        self.kid = kid
        self.public_raw = raw_public_key(private_key)
        self.__key = private_key
        self._headers: dict[str, bytes] = {}

    @classmethod
    def from_raw(cls, kid: str, private_raw: bytes) -> SigningKey:
        if len(private_raw) != 32:
            raise ValueError("an Ed25519 private key is 32 bytes")
        return cls(kid, Ed25519PrivateKey.from_private_bytes(private_raw))

    def sign(self, typ: str, claims: dict[str, Any]) -> str:
        """A JWS compact token whose header is exactly ``{"alg","kid","typ"}``.

        The same bytes PyJWT's ``jwt.encode`` produces (sorted compact header, compact
        claims in their order), with the encoded header made once per ``typ``: tokens are
        signed on every licensing call."""
        header = self._headers.get(typ)
        if header is None:
            text = json.dumps(
                {"alg": "EdDSA", "kid": self.kid, "typ": typ}, separators=(",", ":"), sort_keys=True
            )
            header = self._headers[typ] = _b64(text.encode())
        signing_input = header + b"." + _b64(json.dumps(claims, separators=(",", ":")).encode())
        return (signing_input + b"." + _b64(self.__key.sign(signing_input))).decode("ascii")

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.public_raw, self.kid)

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("SigningKey holds a private key and cannot be pickled or copied")

    def __copy__(self) -> Any:
        raise TypeError("SigningKey holds a private key and cannot be copied")

    def __deepcopy__(self, memo: Any) -> Any:
        raise TypeError("SigningKey holds a private key and cannot be copied")

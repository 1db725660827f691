"""Webhook signing secrets: making them, keeping them encrypted at rest, and signing a
message the Standard Webhooks way (https://www.standardwebhooks.com/).

A secret is ``whsec_`` + base64 of 32 random bytes. A signature is
``v1,`` + base64(HMAC-SHA256(secret bytes, f"{msg_id}.{timestamp}.{body}")); several
signatures (during a secret rotation) are separated by spaces in one header.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
_NONCE_BYTES = 12


class SecretDecryptionError(Exception):
    """A stored secret does not decrypt under this key-encryption key."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of ``msg_id.timestamp.body``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: list[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one signature per secret, space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets_)


@functools.lru_cache(maxsize=4)
def _aead(kek: bytes) -> AESGCM:
    """A key of its own, derived from the key-encryption key, for webhook secrets (derived
    once per process: every delivery attempt decrypts its endpoint's secret)."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"licentia webhook secret"
    ).derive(kek)
    return AESGCM(key)


def encrypt_secret(kek: bytes, secret: str, endpoint_id: str) -> bytes:
    """AES-256-GCM, ``nonce || ciphertext || tag``, bound to the endpoint id."""
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + _aead(kek).encrypt(nonce, secret.encode(), endpoint_id.encode())


def decrypt_secret(kek: bytes, blob: bytes, endpoint_id: str) -> str:
    blob = bytes(blob)
    try:
        plain = _aead(kek).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], endpoint_id.encode())
    except InvalidTag:
        raise SecretDecryptionError(
            f"the secret of webhook endpoint {endpoint_id} does not decrypt: wrong "
            "key-encryption key (LICENTIA_KEY_ENCRYPTION_KEY) or altered data"
        ) from None
    return plain.decode()

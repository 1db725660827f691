"""``Idempotency-Key`` for POST routes that create something (and return a secret).

The key row is inserted in the request's own transaction before the work is done, with
``ON CONFLICT DO NOTHING`` on ``unique(scope, key)``: a concurrent request with the same
key waits on that insert until the first transaction ends, then replays its committed
response (or, if the first one failed and rolled back, does the work itself). The stored
response can hold a secret (a license key), so it is kept encrypted with AES-256-GCM under
a key derived from the key-encryption key, bound to its scope and key.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Conflict, InvalidInput
from server.models import IdempotencyKey

TTL = timedelta(hours=24)
_PENDING = 0
_NONCE_BYTES = 12


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


def request_hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def _aead(kek: bytes) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"licentia idempotent responses v1"
    ).derive(kek)
    return AESGCM(key)


def _aad(scope: str, key: str) -> bytes:
    return scope.encode() + b"\x00" + key.encode()


def seal(kek: bytes, scope: str, key: str, body: bytes) -> dict[str, str]:
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(kek).encrypt(nonce, body, _aad(scope, key))
    return {
        "alg": "A256GCM",
        "nonce": base64.urlsafe_b64encode(nonce).decode(),
        "ciphertext": base64.urlsafe_b64encode(sealed).decode(),
    }


def unseal(kek: bytes, scope: str, key: str, stored: dict[str, str]) -> bytes:
    try:
        nonce = base64.urlsafe_b64decode(stored["nonce"])
        sealed = base64.urlsafe_b64decode(stored["ciphertext"])
        return _aead(kek).decrypt(nonce, sealed, _aad(scope, key))
    except (KeyError, TypeError, ValueError, InvalidTag):
        raise Conflict(
            "The stored response for this Idempotency-Key cannot be replayed; use a new key",
            code="IDEMPOTENCY_UNREADABLE",
        ) from None


async def claim(
    session: AsyncSession,
    kek: bytes,
    *,
    scope: str,
    key: str,
    fingerprint: bytes,
    now: datetime | None = None,
) -> StoredResponse | None:
    """``None``: the caller owns the key and must ``complete`` it in this transaction.
    Otherwise the first response to replay. Another body under the same key is a 422."""
    now = now or datetime.now(UTC)
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        )
    )
    claimed = await session.scalar(
        insert(IdempotencyKey)
        .values(
            scope=scope,
            key=key,
            request_hash=fingerprint,
            response_status=_PENDING,
            response_body={},
            expires_at=now + TTL,
        )
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKey.id)
    )
    if claimed is not None:
        return None
    row = (
        await session.execute(
            select(
                IdempotencyKey.request_hash,
                IdempotencyKey.response_status,
                IdempotencyKey.response_body,
            ).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        )
    ).one_or_none()
    if row is None:  # expired and deleted by a concurrent request: let the client retry
        raise Conflict("Retry this request", code="IDEMPOTENCY_RETRY")
    if bytes(row.request_hash) != fingerprint:
        raise InvalidInput(
            "This Idempotency-Key was used with a different request body",
            code="IDEMPOTENCY_KEY_REUSED",
        )
    if row.response_status == _PENDING:
        raise Conflict(
            "A request with this Idempotency-Key is in progress", code="IDEMPOTENCY_IN_PROGRESS"
        )
    return StoredResponse(row.response_status, unseal(kek, scope, key, row.response_body))


async def complete(
    session: AsyncSession, kek: bytes, *, scope: str, key: str, status: int, body: bytes
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(response_status=status, response_body=seal(kek, scope, key, body))
    )

"""``Idempotency-Key`` for POST routes whose repeat must not act twice: issuing a license (it
returns a secret), consuming usage units.

The key row is inserted in the request's own transaction before the work is done, with
``ON CONFLICT DO NOTHING`` on ``unique(scope, key)``: a concurrent request with the same
key waits on that insert until the first transaction ends, then replays its committed
response (or, if the first one failed and rolled back, does the work itself). The stored
response can hold a secret (a license key), so it is kept encrypted with AES-256-GCM under
a key derived from the key-encryption key, bound to its scope and key.

The statements are written once, as SQLAlchemy Core, and run in either kind of request
transaction: the ORM session of the admin API, or a plain asyncpg connection of the product
licensing pool (``server.db.hot_pool.pooled_transaction``), for which they are compiled to
asyncpg's SQL once per statement shape.
"""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar.params import HeaderParameter, ParameterKwarg
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import Conflict, InvalidInput
from server.models import IdempotencyKey

TTL = timedelta(hours=24)


def key_header(description: str) -> ParameterKwarg:
    """The ``Idempotency-Key`` header of a route (``Annotated[str | None, key_header(...)]``):
    its format, written once; ``description`` says what a repeat does on that route."""
    return HeaderParameter(
        name="Idempotency-Key",
        required=False,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=description,
    )


_PENDING = 0
_NONCE_BYTES = 12


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes


Transaction: TypeAlias = AsyncSession | asyncpg.Connection
"""The request's transaction: an ORM session, or an asyncpg connection inside a transaction."""

_DIALECT = asyncpg_dialect.dialect()


async def _rows(transaction: Transaction, statement: Any) -> list[Any]:
    """Run ``statement`` in the transaction; its rows (attribute access by column name)."""
    if isinstance(transaction, AsyncSession):
        connection = await transaction.connection()  # Core statements, the session's transaction
        result = await connection.execute(statement)
        return list(result.all()) if result.returns_rows else []
    compiled = statement.compile(dialect=_DIALECT)
    params = compiled.construct_params()
    args = [params[name] for name in compiled.positiontup or ()]
    return [_Row(record) for record in await transaction.fetch(str(compiled), *args)]


class _Row:
    """An asyncpg record read by attribute, like a SQLAlchemy row."""

    __slots__ = ("_record",)

    def __init__(self, record: asyncpg.Record) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None


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
    session: Transaction,
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
    await _rows(
        session,
        delete(IdempotencyKey).where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now,
        ),
    )
    claimed = await _rows(
        session,
        insert(IdempotencyKey)
        .values(
            id=uuid.uuid4(),
            scope=scope,
            key=key,
            request_hash=fingerprint,
            response_status=_PENDING,
            response_body={},
            expires_at=now + TTL,
        )
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKey.id),
    )
    if claimed:
        return None
    found = await _rows(
        session,
        select(
            IdempotencyKey.request_hash,
            IdempotencyKey.response_status,
            IdempotencyKey.response_body,
        ).where(IdempotencyKey.scope == scope, IdempotencyKey.key == key),
    )
    row = found[0] if found else None
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
    session: Transaction, kek: bytes, *, scope: str, key: str, status: int, body: bytes
) -> None:
    await _rows(
        session,
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(response_status=status, response_body=seal(kek, scope, key, body)),
    )

"""The per-process keyring: the decrypted active signing key, kept in memory."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from keys.crypto import SigningKey, decrypt_private_key
from server.errors import NoSigningKey
from server.models import SigningKeyRow
from server.signing_keys.service import lock_rotation, promote_due_keys


class Keyring:
    """The decrypted active key, kept in memory per process.

    It re-reads the active kid at most every ``refresh_seconds`` (one indexed query), so a
    rotation made by another process or replica is picked up within that bound; a rotation
    made through this process is picked up at once (``invalidate``). A pending key whose
    time has come is promoted by whichever process notices first.
    """

    def __init__(self, engine: AsyncEngine, kek: bytes, refresh_seconds: float = 30.0) -> None:
        self._engine = engine
        self._kek = kek
        self._refresh_seconds = refresh_seconds
        self._signer: SigningKey | None = None
        self._checked_at = 0.0
        self._next_activation: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"Keyring(active={self._signer.kid if self._signer else None!r})"

    def invalidate(self) -> None:
        self._checked_at = 0.0

    def _fresh(self) -> bool:
        now = time.monotonic()
        if self._signer is None or now - self._checked_at >= self._refresh_seconds:
            return False
        return self._next_activation is None or time.time() < self._next_activation

    async def signer(self) -> SigningKey:
        if self._fresh():
            return self._signer  # type: ignore[return-value]
        async with self._lock:
            if not self._fresh():
                await self._reload()
        return self._signer  # type: ignore[return-value]

    async def _reload(self) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            due = await session.scalar(
                text(
                    "SELECT 1 FROM signing_keys WHERE state = 'pending' "
                    "AND activates_at <= clock_timestamp() LIMIT 1"
                )
            )
            if due:
                await lock_rotation(session)
                await promote_due_keys(session)
            row = (
                await session.execute(
                    select(SigningKeyRow.kid, SigningKeyRow.encrypted_private_key).where(
                        SigningKeyRow.state == "active"
                    )
                )
            ).first()
            next_pending = await session.scalar(
                text(
                    "SELECT min(activates_at) FROM signing_keys WHERE state = 'pending' "
                    "AND activates_at > clock_timestamp()"
                )
            )
        if row is None:
            raise NoSigningKey("No active signing key; run `licentia keys rotate`")
        if self._signer is None or self._signer.kid != row.kid:
            private_raw = decrypt_private_key(self._kek, bytes(row.encrypted_private_key), row.kid)
            self._signer = SigningKey.from_raw(row.kid, private_raw)
        self._next_activation = next_pending.timestamp() if next_pending else None
        self._checked_at = time.monotonic()

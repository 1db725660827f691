"""The per-process keyring: the decrypted active signing key and the trust material that
goes with it (its certificate, the revocation list, the root endorsements), kept in memory."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from keys.crypto import SigningKey, decrypt_private_key
from server.errors import NoSigningKey
from server.signing_keys.service import lock_rotation, promote_due_keys


@dataclass(frozen=True)
class Trust:
    """What an answer carrying a token signed by ``kid`` also carries, so that a product
    that embeds only the root can verify it (docs/token-format.md, "Root of trust").

    ``key_certificate``: the newest ``key+jwt`` for ``kid`` (``None`` only for a key that
    was never certified, e.g. created while the root was offline and not certified since).
    ``key_revocations``: the current ``key-revocations+jwt`` (``None`` until a key is
    revoked). ``root_endorsements``: the ``root+jwt`` chain, oldest first (empty until the
    root is rotated)."""

    kid: str
    key_certificate: str | None
    key_revocations: str | None
    root_endorsements: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Snapshot:
    signer: SigningKey
    trust: Trust


_ACTIVE = text(
    """
    SELECT k.kid, k.encrypted_private_key,
           (SELECT c.token FROM key_certificates c WHERE c.kid = k.kid
             ORDER BY c.id DESC LIMIT 1) AS certificate,
           (SELECT l.token FROM key_revocation_lists l ORDER BY l.seq DESC LIMIT 1)
             AS revocations,
           ARRAY(SELECT r.endorsement FROM root_keys r WHERE r.endorsement IS NOT NULL
                 ORDER BY r.created_at) AS endorsements
      FROM signing_keys k WHERE k.state = 'active'
    """
)


class Keyring:
    """The decrypted active key and its trust material, kept in memory per process.

    It re-reads the active kid, its certificate and the revocation list at most every
    ``refresh_seconds`` (one query), so a rotation or revocation made by another process or
    replica is picked up within that bound; one made through this process is picked up at
    once (``invalidate``). A pending key whose time has come is promoted by whichever
    process notices first.
    """

    def __init__(self, engine: AsyncEngine, kek: bytes, refresh_seconds: float = 30.0) -> None:
        self._engine = engine
        self._kek = kek
        self._refresh_seconds = refresh_seconds
        self._snapshot: _Snapshot | None = None
        self._checked_at = 0.0
        self._next_activation: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        kid = self._snapshot.signer.kid if self._snapshot else None
        return f"Keyring(active={kid!r})"

    def invalidate(self) -> None:
        self._checked_at = 0.0

    def _fresh(self) -> bool:
        now = time.monotonic()
        if self._snapshot is None or now - self._checked_at >= self._refresh_seconds:
            return False
        return self._next_activation is None or time.time() < self._next_activation

    async def _current(self) -> _Snapshot:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():
                    await self._reload()
        assert self._snapshot is not None
        return self._snapshot

    async def signer(self) -> SigningKey:
        """The active signing key (no database round trip while the cache is fresh)."""
        return (await self._current()).signer

    async def trust(self) -> Trust:
        """The trust material of the active key, cached like ``signer``."""
        return (await self._current()).trust

    async def signer_and_trust(self) -> tuple[SigningKey, Trust]:
        """The active key and its trust material from one snapshot: the certificate is
        always the one of the key returned (two separate calls could straddle a reload)."""
        snapshot = await self._current()
        return snapshot.signer, snapshot.trust

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
            row = (await session.execute(_ACTIVE)).first()
            next_pending = await session.scalar(
                text(
                    "SELECT min(activates_at) FROM signing_keys WHERE state = 'pending' "
                    "AND activates_at > clock_timestamp()"
                )
            )
        if row is None:
            raise NoSigningKey("No active signing key; run `licentia keys rotate`")
        signer = self._snapshot.signer if self._snapshot else None
        if signer is None or signer.kid != row.kid:
            private_raw = decrypt_private_key(self._kek, bytes(row.encrypted_private_key), row.kid)
            signer = SigningKey.from_raw(row.kid, private_raw)
        trust = Trust(
            kid=row.kid,
            key_certificate=row.certificate,
            key_revocations=row.revocations,
            root_endorsements=tuple(row.endorsements or ()),
        )
        self._snapshot = _Snapshot(signer, trust)
        self._next_activation = next_pending.timestamp() if next_pending else None
        self._checked_at = time.monotonic()

"""Signing keys in the database: states, rotation, retirement, revocation and the JWKS.

States: ``pending`` (published, not signing yet), ``active`` (the one that signs; the
database allows only one), ``retired`` (published, no longer signs), ``revoked`` (gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from keys.crypto import (
    compute_kid,
    encrypt_private_key,
    generate_private_key,
    public_jwk,
    raw_private_key,
    raw_public_key,
)
from server.audit.service import Actor, record
from server.errors import InvalidTransition, NotFound
from server.models import SigningKeyRow
from server.validation import check_datetime

PUBLISHED_STATES = ("pending", "active", "retired")
_ROTATION_LOCK = 0x4C4B4559  # advisory lock id shared by every process that promotes keys


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    state: str
    created_at: datetime
    activates_at: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None


def _info(row: SigningKeyRow) -> KeyInfo:
    return KeyInfo(
        kid=row.kid,
        state=row.state,
        created_at=row.created_at,
        activates_at=row.activates_at,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
        revoked_at=row.revoked_at,
    )


def _new_row(kek: bytes, *, state: str, activates_at: datetime | None) -> SigningKeyRow:
    private_key = generate_private_key()
    public_raw = raw_public_key(private_key)
    kid = compute_kid(public_raw)
    return SigningKeyRow(
        kid=kid,
        state=state,
        public_key=public_raw,
        encrypted_private_key=encrypt_private_key(kek, raw_private_key(private_key), kid),
        activates_at=activates_at,
        activated_at=datetime.now(UTC) if state == "active" else None,
    )


async def lock_rotation(session: AsyncSession) -> None:
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _ROTATION_LOCK})


async def ensure_active_key(session: AsyncSession, kek: bytes) -> str | None:
    """Create and activate a key when none is active; return its kid, else ``None``."""
    await lock_rotation(session)
    await promote_due_keys(session)
    active = await session.scalar(select(SigningKeyRow.kid).where(SigningKeyRow.state == "active"))
    if active:
        return None
    row = _new_row(kek, state="active", activates_at=None)
    session.add(row)
    await session.flush()
    return row.kid


async def rotate(
    session: AsyncSession, actor: Actor, kek: bytes, *, activate_at: datetime | None = None
) -> KeyInfo:
    """Publish a new key now; it starts signing at ``activate_at`` (default: now)."""
    if activate_at is not None:
        check_datetime(activate_at, "activate_at")
    await lock_rotation(session)
    pending = _new_row(kek, state="pending", activates_at=activate_at)
    if activate_at is None:
        pending.activates_at = func.clock_timestamp()  # the database's "now", not ours
    session.add(pending)
    await session.flush()
    await promote_due_keys(session)
    await session.refresh(pending)
    await record(session, actor, "key.rotate", "signing_key", pending.kid)
    return _info(pending)


async def promote_due_keys(session: AsyncSession) -> bool:
    """Activate the newest pending key whose time has come; retire the previous one.

    Callers hold the rotation advisory lock."""
    due = await session.scalar(
        select(SigningKeyRow)
        .where(
            SigningKeyRow.state == "pending", SigningKeyRow.activates_at <= func.clock_timestamp()
        )
        .order_by(SigningKeyRow.activates_at.desc(), SigningKeyRow.created_at.desc())
        .limit(1)
    )
    if due is None:
        return False
    await session.execute(
        update(SigningKeyRow)
        .where(SigningKeyRow.state == "active")
        .values(state="retired", retired_at=func.clock_timestamp())
    )
    await session.execute(
        update(SigningKeyRow)
        .where(
            SigningKeyRow.state == "pending",
            SigningKeyRow.activates_at <= due.activates_at,
            SigningKeyRow.kid != due.kid,
        )
        .values(state="retired", retired_at=func.clock_timestamp())
    )
    due.state = "active"
    due.activated_at = datetime.now(UTC)
    await session.flush()
    return True


async def list_keys(session: AsyncSession) -> list[KeyInfo]:
    rows = await session.scalars(select(SigningKeyRow).order_by(SigningKeyRow.created_at))
    return [_info(row) for row in rows]


async def _get(session: AsyncSession, kid: str) -> SigningKeyRow:
    row = await session.get(SigningKeyRow, kid, with_for_update=True)
    if row is None:
        raise NotFound(f"No signing key {kid!r}", code="KEY_NOT_FOUND")
    return row


async def retire(session: AsyncSession, actor: Actor, kid: str) -> KeyInfo:
    row = await _get(session, kid)
    if row.state == "active":
        raise InvalidTransition(
            "The active key cannot be retired; rotate to a new key first", code="KEY_ACTIVE"
        )
    if row.state != "pending":
        raise InvalidTransition(f"A {row.state} key cannot be retired", code="KEY_STATE")
    row.state, row.retired_at = "retired", datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.retire", "signing_key", kid)
    return _info(row)


async def revoke(session: AsyncSession, actor: Actor, kid: str) -> KeyInfo:
    row = await _get(session, kid)
    if row.state == "active":
        raise InvalidTransition(
            "The active key cannot be revoked; rotate to a new key first", code="KEY_ACTIVE"
        )
    if row.state == "revoked":
        raise InvalidTransition("The key is already revoked", code="KEY_STATE")
    row.state, row.revoked_at = "revoked", datetime.now(UTC)
    await session.flush()
    await record(session, actor, "key.revoke", "signing_key", kid)
    return _info(row)


async def jwks(connection: AsyncSession | AsyncConnection) -> dict[str, Any]:
    rows = await connection.execute(
        select(SigningKeyRow.kid, SigningKeyRow.public_key)
        .where(SigningKeyRow.state.in_(PUBLISHED_STATES))
        .order_by(SigningKeyRow.created_at)
    )
    return {"keys": [public_jwk(bytes(row.public_key), row.kid) for row in rows]}

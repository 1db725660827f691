"""Admin API keys: created with scopes, stored as a hash, revocable at once.

A key reaches only keys within its own scopes: it creates keys with a subset of its scopes
and revokes only keys whose scopes it holds (``*`` holds everything; only ``*`` holds
``*``), so a limited key can neither mint a stronger one nor switch a stronger one off.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import ALL_SCOPES, Principal, new_api_key
from server.errors import InvalidInput, NotFound, PermissionDenied
from server.models import ApiKey
from server.pagination import Page, paginate


@dataclass(frozen=True)
class CreatedKey:
    key: str
    row: ApiKey


def _refuse_escalation(actor: Principal | None, scopes: set[str] | list[str], verb: str) -> None:
    """A key can only grant, or revoke a key with, scopes it holds itself; a ``*`` key (and
    the CLI, with no actor) may do anything, and only they reach ``*``."""
    if actor is None:
        return
    beyond = actor.scopes_lacking(scopes)
    if beyond:
        raise PermissionDenied(
            f"This API key cannot {verb} scope(s) it does not hold: {', '.join(beyond)}",
            code="SCOPE_ESCALATION",
        )


async def create_api_key(
    session: AsyncSession, actor: Principal | None, name: str, scopes: list[str]
) -> CreatedKey:
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown:
        raise InvalidInput(f"Unknown scope(s): {', '.join(unknown)}", code="UNKNOWN_SCOPE")
    _refuse_escalation(actor, set(scopes), "grant")
    key, prefix, key_hash = new_api_key()
    row = ApiKey(name=name, prefix=prefix, key_hash=key_hash, scopes=sorted(set(scopes)))
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await record(
        session,
        actor or ("cli", None),
        "api_key.create",
        "api_key",
        row.id,
        data={"name": name, "scopes": row.scopes},
    )
    return CreatedKey(key=key, row=row)


async def create_initial_key(session: AsyncSession) -> str | None:
    """On the very first start (no API key ever made), create an all-scopes key."""
    if await session.scalar(select(exists().where(ApiKey.id.is_not(None)))):
        return None
    return (await create_api_key(session, None, "initial-admin", ["*"])).key


async def list_api_keys(session: AsyncSession, *, limit: int, cursor: str | None) -> Page[ApiKey]:
    return await paginate(session, select(ApiKey), ApiKey.created_at, ApiKey.id, limit, cursor)


async def revoke_api_key(session: AsyncSession, actor: Principal, key_id: uuid.UUID) -> None:
    row = await session.get(ApiKey, key_id, with_for_update=True)
    if row is None or row.revoked_at is not None:
        raise NotFound("No such API key", code="API_KEY_NOT_FOUND")
    _refuse_escalation(actor, row.scopes, "revoke a key with")
    row.revoked_at = datetime.now(UTC)
    await session.flush()
    await record(session, actor, "api_key.revoke", "api_key", key_id)

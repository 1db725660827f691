"""The audit log: one row per state change, written in the request's transaction."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal
from server.models import AuditEvent
from server.observability import current_client_ip, current_request_id
from server.pagination import Page, paginate

Actor = Principal | tuple[str, str | None] | None


def _event(
    actor: Actor,
    action: str,
    target_type: str | None,
    target_id: object | None,
    organization_id: uuid.UUID | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    if isinstance(actor, Principal):
        actor_type, actor_id = actor.actor
        organization_id = organization_id or actor.organization_id
    elif actor is None:
        actor_type, actor_id = "system", None
    else:
        actor_type, actor_id = actor
    return {
        "organization_id": organization_id,
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id) if target_id is not None else None,
        "data": data or {},
        "request_id": current_request_id(),
        "ip": current_client_ip(),
    }


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    organization_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append an audit event. ``actor`` is a principal, ``(type, id)``, or ``None`` (system)."""
    event = _event(actor, action, target_type, target_id, organization_id, data)
    await session.execute(insert(AuditEvent).values(**event))


_EVENT_COLUMNS = (
    "organization_id",
    "actor_type",
    "actor_id",
    "action",
    "target_type",
    "target_id",
    "data",
    "request_id",
    "ip",
)
_INSERT_EVENT = (
    f"INSERT INTO audit_events ({', '.join(_EVENT_COLUMNS)}) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)"
)


async def record_on_connection(
    conn: asyncpg.Connection,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    organization_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """``record`` for the licensing hot path, which runs on a plain asyncpg connection."""
    event = _event(actor, action, target_type, target_id, organization_id, data)
    event["data"] = json.dumps(event["data"])
    await conn.execute(_INSERT_EVENT, *(event[column] for column in _EVENT_COLUMNS))


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None = None,
    action: str | None = None,
    target_id: str | None = None,
    limit: int,
    cursor: str | None,
) -> Page[AuditEvent]:
    """Oldest first. Admin keys see every event; a user only their organization's."""
    query = select(AuditEvent)
    if not principal.is_admin:
        query = query.where(AuditEvent.organization_id == principal.organization_id)
    if organization_id is not None:
        query = query.where(AuditEvent.organization_id == organization_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if target_id is not None:
        query = query.where(AuditEvent.target_id == target_id)
    return await paginate(session, query, AuditEvent.at, AuditEvent.id, limit, cursor)

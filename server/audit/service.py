"""The audit log: one row per state change, written in the request's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal
from server.models import AuditEvent
from server.observability import current_client_ip, current_request_id
from server.pagination import Page, paginate


async def record(
    session: AsyncSession,
    actor: Principal | tuple[str, str | None] | None,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    organization_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append an audit event. ``actor`` is a principal, ``(type, id)``, or ``None`` (system)."""
    if isinstance(actor, Principal):
        actor_type, actor_id = actor.actor
        organization_id = organization_id or actor.organization_id
    elif actor is None:
        actor_type, actor_id = "system", None
    else:
        actor_type, actor_id = actor
    await session.execute(
        insert(AuditEvent).values(
            organization_id=organization_id,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            data=data or {},
            request_id=current_request_id(),
            ip=current_client_ip(),
        )
    )


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

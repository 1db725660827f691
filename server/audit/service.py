"""The audit log: one row per state change, written in the request's transaction."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal
from server.models import AuditEvent
from server.observability import current_client_ip, current_request_id


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

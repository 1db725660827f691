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

Actor = Principal | tuple[str, str | None] | None


def principal_of(actor: Actor) -> Principal | None:
    """Whose view of the tenants applies to ``actor``: a principal's; ``None`` (every
    organization) for the command line (``("cli", None)``) and the system."""
    return actor if isinstance(actor, Principal) else None


def event(
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    organization_id: uuid.UUID | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one way an audit row is built: every column of ``AUDIT_COLUMNS``, with the
    request id and the client address of the request being served (when there is one)."""
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


AUDIT_COLUMNS = (
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
    row = event(actor, action, target_type, target_id, organization_id=organization_id, data=data)
    await session.execute(insert(AuditEvent).values(**row))


def _positional(row: dict[str, Any]) -> list[Any]:
    """The licensing pool encodes ``jsonb`` itself (``server.db.hot_pool``)."""
    return [row[c] for c in AUDIT_COLUMNS]


def insert_select_sql(source: str, **per_row: str) -> str:
    """An ``INSERT INTO audit_events ... SELECT ... FROM source`` writing one event per row
    of ``source`` (a CTE in the same statement). Every column comes from an ``event()``
    passed through ``insert_select_params``, except those given in ``per_row`` as SQL over
    ``source``; ``data`` given there is merged into the event's own data."""
    columns = []
    for column in AUDIT_COLUMNS:
        param = f":audit_{column}"
        if column == "data":
            base = f"CAST({param} AS jsonb)"
            columns.append(f"{base} || {per_row['data']}" if "data" in per_row else base)
        else:
            columns.append(per_row.get(column, param))
    unknown = set(per_row) - set(AUDIT_COLUMNS)
    if unknown:
        raise ValueError(f"not audit columns: {sorted(unknown)}")
    return (
        f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)}) "
        f"SELECT {', '.join(columns)} FROM {source}"
    )


def insert_select_params(row: dict[str, Any]) -> dict[str, Any]:
    """An ``event()`` as the named parameters of an ``insert_select_sql`` statement."""
    return {f"audit_{c}": v for c, v in zip(AUDIT_COLUMNS, _positional(row), strict=True)}


async def list_events(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None = None,
    action: str | None = None,
    target_id: str | None = None,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[AuditEvent]:
    """Oldest first (newest first with ``newest_first``: a cursor continues in the order it
    was made in). Admin keys see every event; a user only their organization's."""
    query = select(AuditEvent)
    if not principal.is_admin:
        query = query.where(AuditEvent.organization_id == principal.organization_id)
    if organization_id is not None:
        query = query.where(AuditEvent.organization_id == organization_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if target_id is not None:
        query = query.where(AuditEvent.target_id == target_id)
    return await paginate(
        session, query, AuditEvent.at, AuditEvent.id, limit, cursor, newest_first=newest_first
    )

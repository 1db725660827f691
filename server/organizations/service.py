"""Organizations: admins create and list them all; a user sees and (as owner/admin) renames
their own. Another organization is always 404 for a user."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import MANAGERS, Principal
from server.auth.service import clean_text
from server.errors import NotFound, PermissionDenied
from server.models import Organization
from server.pagination import Page, paginate


def _not_found() -> NotFound:
    return NotFound("No such organization", code="ORGANIZATION_NOT_FOUND")


async def get_organization(
    session: AsyncSession,
    principal: Principal,
    organization_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Organization:
    """The organization, if the caller may see it (admins: any; users: their own)."""
    if not principal.is_admin and organization_id != principal.organization_id:
        raise _not_found()
    query = select(Organization).where(Organization.id == organization_id)
    if for_update:
        query = query.with_for_update()
    organization = await session.scalar(query)
    if organization is None:
        raise _not_found()
    return organization


async def list_organizations(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    search: str | None = None,
) -> Page[Organization]:
    """``search``: a case-insensitive part of the name."""
    query = select(Organization)
    if search:
        query = query.where(Organization.name.icontains(search, autoescape=True))
    if not principal.is_admin:
        query = query.where(Organization.id == principal.organization_id)
    return await paginate(session, query, Organization.created_at, Organization.id, limit, cursor)


async def names(
    session: AsyncSession, principal: Principal, organization_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    """The names of the organizations among ``organization_ids`` the caller may see."""
    wanted = {id_ for id_ in organization_ids if id_ is not None}
    if not principal.is_admin:
        wanted &= {principal.organization_id}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(wanted))
    )
    return {row.id: row.name for row in rows}


async def create_organization(
    session: AsyncSession, principal: Principal, name: str
) -> Organization:
    name = clean_text(name, "name")
    organization = Organization(id=uuid.uuid4(), name=name)
    session.add(organization)
    await session.flush()
    await session.refresh(organization)
    await record(
        session,
        principal,
        "organization.create",
        "organization",
        organization.id,
        organization_id=organization.id,
        data={"name": name},
    )
    return organization


async def update_organization(
    session: AsyncSession, principal: Principal, organization_id: uuid.UUID, *, name: str | None
) -> Organization:
    organization = await get_organization(session, principal, organization_id, for_update=True)
    if not principal.is_admin and principal.role not in MANAGERS:
        raise PermissionDenied(
            "Only an owner or admin may change the organization", code="INSUFFICIENT_ROLE"
        )
    changes: dict[str, object] = {}
    if name is not None:
        name = clean_text(name, "name")
        if name != organization.name:
            changes["name"] = {"from": organization.name, "to": name}
            organization.name = name
    if changes:
        organization.updated_at = datetime.now(UTC)
        await session.flush()
        await record(
            session,
            principal,
            "organization.update",
            "organization",
            organization.id,
            organization_id=organization.id,
            data=changes,
        )
    return organization

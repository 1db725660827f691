"""Projects: any member of an organization manages its projects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import Principal
from server.auth.service import clean_text
from server.errors import NotFound
from server.models import Project
from server.pagination import Page, paginate


def _not_found() -> NotFound:
    return NotFound("No such project", code="PROJECT_NOT_FOUND")


async def list_projects(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
    organization_id: uuid.UUID | None = None,
) -> Page[Project]:
    """The caller's organization's projects; admins name the organization."""
    owner = organization_id if principal.is_admin else principal.organization_id
    query = select(Project).where(Project.organization_id == owner)
    return await paginate(session, query, Project.created_at, Project.id, limit, cursor)


async def get_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID, *, for_update: bool = False
) -> Project:
    query = select(Project).where(
        Project.id == project_id, Project.organization_id == principal.organization_id
    )
    if for_update:
        query = query.with_for_update()
    project = await session.scalar(query)
    if project is None:
        raise _not_found()
    return project


async def create_project(
    session: AsyncSession, principal: Principal, *, name: str, description: str
) -> Project:
    project = Project(
        organization_id=principal.organization_id,
        name=clean_text(name, "name"),
        description=description.strip(),
    )
    session.add(project)
    await session.flush()
    await session.refresh(project)
    await record(
        session, principal, "project.create", "project", project.id, data={"name": project.name}
    )
    return project


async def update_project(
    session: AsyncSession,
    principal: Principal,
    project_id: uuid.UUID,
    *,
    name: str | None,
    description: str | None,
) -> Project:
    project = await get_project(session, principal, project_id, for_update=True)
    changes: dict[str, Any] = {}
    if name is not None and (cleaned := clean_text(name, "name")) != project.name:
        changes["name"] = cleaned
        project.name = cleaned
    if description is not None and (text := description.strip()) != project.description:
        changes["description"] = True
        project.description = text
    if changes:
        project.updated_at = datetime.now(UTC)
        await session.flush()
        await record(session, principal, "project.update", "project", project.id, data=changes)
    return project


async def delete_project(
    session: AsyncSession, principal: Principal, project_id: uuid.UUID
) -> None:
    project = await get_project(session, principal, project_id, for_update=True)
    await session.delete(project)
    await session.flush()
    await record(
        session, principal, "project.delete", "project", project_id, data={"name": project.name}
    )

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import EVERY_ROLE, Principal, allow, provide_principal
from server.models import Project
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.projects import service
from server.projects.schemas import ProjectCreate, ProjectRead, ProjectUpdate


def project_read(row: Project) -> ProjectRead:
    return ProjectRead(**{f: getattr(row, f) for f in ProjectRead.__struct_fields__})


class ProjectController(Controller):
    path = "/projects"
    tags = ["projects"]
    security = [{"bearer": []}]
    guards = [allow(roles=EVERY_ROLE)]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        summary="List your organization's projects (any member)",
        responses=problem_responses(401, 403, 422),
    )
    async def list_projects(
        self, session: AsyncSession, principal: Principal, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[ProjectRead]:
        page = await service.list_projects(session, principal, limit=limit, cursor=cursor)
        return PageOf(items=[project_read(r) for r in page.items], next_cursor=page.next_cursor)

    @post(
        "/",
        summary="Create a project (any member)",
        responses=problem_responses(400, 401, 403, 422),
    )
    async def create(
        self, session: AsyncSession, principal: Principal, data: ProjectCreate
    ) -> ProjectRead:
        row = await service.create_project(
            session, principal, name=data.name, description=data.description
        )
        return project_read(row)

    @get(
        "/{project_id:uuid}",
        summary="Get a project",
        responses=problem_responses(401, 403, 404),
    )
    async def get_project(
        self, session: AsyncSession, principal: Principal, project_id: uuid.UUID
    ) -> ProjectRead:
        return project_read(await service.get_project(session, principal, project_id))

    @patch(
        "/{project_id:uuid}",
        summary="Change a project's name or description",
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        project_id: uuid.UUID,
        data: ProjectUpdate,
    ) -> ProjectRead:
        row = await service.update_project(
            session, principal, project_id, name=data.name, description=data.description
        )
        return project_read(row)

    @delete(
        "/{project_id:uuid}",
        summary="Delete a project",
        responses=problem_responses(401, 403, 404),
    )
    async def remove(
        self, session: AsyncSession, principal: Principal, project_id: uuid.UUID
    ) -> None:
        await service.delete_project(session, principal, project_id)

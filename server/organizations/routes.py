from __future__ import annotations

import uuid

from litestar import Controller, get, patch, post
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import EVERY_ROLE, MANAGERS, Principal, allow, provide_principal
from server.organizations import service
from server.organizations.schemas import (
    OrganizationCreate,
    OrganizationRead,
    OrganizationUpdate,
    organization_read,
)
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses


class OrganizationController(Controller):
    path = "/organizations"
    tags = ["organizations"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @post(
        "/",
        guards=[allow(scope="organizations:write")],
        summary="Create an organization (admin API key)",
        responses=problem_responses(400, 401, 403, 422),
    )
    async def create(
        self, session: AsyncSession, principal: Principal, data: OrganizationCreate
    ) -> OrganizationRead:
        return organization_read(await service.create_organization(session, principal, data.name))

    @get(
        "/",
        guards=[allow(scope="organizations:read", roles=EVERY_ROLE)],
        summary="List organizations",
        responses=problem_responses(401, 403, 422),
        description="Admin API keys see every organization; a user sees only their own.",
    )
    async def list_organizations(
        self, session: AsyncSession, principal: Principal, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[OrganizationRead]:
        page = await service.list_organizations(session, principal, limit=limit, cursor=cursor)
        return PageOf(
            items=[organization_read(row) for row in page.items], next_cursor=page.next_cursor
        )

    @get(
        "/{organization_id:uuid}",
        guards=[allow(scope="organizations:read", roles=EVERY_ROLE)],
        summary="Get an organization",
        responses=problem_responses(401, 403, 404),
    )
    async def get_organization(
        self, session: AsyncSession, principal: Principal, organization_id: uuid.UUID
    ) -> OrganizationRead:
        return organization_read(
            await service.get_organization(session, principal, organization_id)
        )

    @patch(
        "/{organization_id:uuid}",
        guards=[allow(scope="organizations:write", roles=MANAGERS)],
        summary="Rename an organization (admin API key, or its owner/admin)",
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        organization_id: uuid.UUID,
        data: OrganizationUpdate,
    ) -> OrganizationRead:
        row = await service.update_organization(session, principal, organization_id, name=data.name)
        return organization_read(row)

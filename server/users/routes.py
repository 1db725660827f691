from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import EVERY_ROLE, MANAGERS, Principal, allow, provide_principal
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.users import service
from server.users.schemas import UserCreate, UserRead, UserUpdate, user_read

_read_guard = allow(scope="organizations:read", roles=EVERY_ROLE)


class UserController(Controller):
    path = "/users"
    tags = ["users"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        guards=[_read_guard],
        summary="List the users of your organization",
        responses=problem_responses(401, 403, 422),
        description="Every member may list their organization's users. Admin API keys "
        "(organizations:read) list all users, optionally of one organization.",
    )
    async def list_users(
        self,
        session: AsyncSession,
        principal: Principal,
        organization_id: Annotated[
            uuid.UUID | None, Parameter(description="Admin API keys: only this organization")
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> PageOf[UserRead]:
        page = await service.list_users(
            session, principal, organization_id=organization_id, limit=limit, cursor=cursor
        )
        return PageOf(items=[user_read(row) for row in page.items], next_cursor=page.next_cursor)

    @post(
        "/",
        guards=[allow(scope="users:write", roles=MANAGERS)],
        summary="Add a user to your organization (owner/admin)",
        responses=problem_responses(400, 401, 403, 404, 409, 422),
        description="Only an owner may add another owner. Admin API keys (users:write) "
        "must name the organization_id and hold every scope of the role they give "
        "(403 SCOPE_ESCALATION). E-mail addresses are unique within an organization "
        "(409 EMAIL_TAKEN); other organizations are never consulted.",
    )
    async def create(
        self, session: AsyncSession, principal: Principal, data: UserCreate
    ) -> UserRead:
        return user_read(await service.create_user(session, principal, data))

    @get(
        "/{user_id:uuid}",
        guards=[_read_guard],
        summary="Get a user",
        responses=problem_responses(401, 403, 404),
    )
    async def get_user(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID
    ) -> UserRead:
        return user_read(await service.get_user(session, principal, user_id))

    @patch(
        "/{user_id:uuid}",
        guards=[allow(scope="users:write", roles=EVERY_ROLE)],
        summary="Change a user's name, role or (your own) password",
        responses=problem_responses(400, 401, 403, 404, 409, 422),
        description="Owners/admins change names and roles; only an owner grants or takes "
        "away the owner role; the last owner cannot be demoted (409 LAST_OWNER). Admin API "
        "keys (users:write) must hold every scope of the user's role and of the role they "
        "give (403 SCOPE_ESCALATION). Anyone may change their own name, and their own "
        "password with current_password: that ends every session of the account.",
    )
    async def update(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: UserUpdate
    ) -> UserRead:
        return user_read(await service.update_user(session, principal, user_id, data))

    @delete(
        "/{user_id:uuid}",
        guards=[allow(scope="users:write", roles=MANAGERS)],
        summary="Remove a user (owner/admin; never the last owner)",
        description="Admin API keys (users:write) must hold every scope of the user's role "
        "(403 SCOPE_ESCALATION).",
        responses=problem_responses(401, 403, 404, 409),
    )
    async def remove(self, session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
        await service.delete_user(session, principal, user_id)

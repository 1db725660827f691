"""Named-user seats of a license: ``/api/v1/licenses/{license_id}/users``."""

from __future__ import annotations

import uuid

from litestar import Controller, Response, delete, get, post
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import EVERY_ROLE, MANAGERS, Principal, allow, provide_principal
from server.license_users import service
from server.license_users.schemas import LicenseUserAssign, LicenseUserRead, LicenseUsersRead
from server.problems import problem_responses


class LicenseUserController(Controller):
    path = "/licenses/{license_id:uuid}/users"
    tags = ["license admin"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        guards=[allow(scope="licenses:read", roles=EVERY_ROLE)],
        summary="List the users assigned to a license",
        responses=problem_responses(401, 403, 404, 422),
        description=(
            "The license's `seat_kind`, `max_users`, `machines_per_user` and its assigned "
            "users (oldest first), each with `machines`: their machines holding a live seat. "
            "Everyone in the license's organization may list them; admin API keys need "
            "`licenses:read`."
        ),
    )
    async def list_users(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseUsersRead:
        return await service.list_users(session, principal, license_id)

    @post(
        "/",
        guards=[allow(scope="licenses:write", roles=MANAGERS)],
        summary="Assign a user to a license (a named seat)",
        responses=problem_responses(400, 401, 403, 404, 409, 422),
        description=(
            "Owners and admins of the license's organization, or admin API keys "
            "(`licenses:write`). 201 with the assignment; 200 when the user already was "
            "assigned. 404 `USER_NOT_FOUND` for anyone who is not a member of the license's "
            "organization; 409 `USER_LIMIT` when `max_users` users are assigned already; 409 "
            "`NOT_A_USER_LICENSE` when the license's tier counts machines."
        ),
    )
    async def assign(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        data: LicenseUserAssign,
    ) -> Response[LicenseUserRead]:
        assigned, created = await service.assign_user(session, principal, license_id, data.user_id)
        return Response(assigned, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @delete(
        "/{user_id:uuid}",
        guards=[allow(scope="licenses:write", roles=MANAGERS)],
        summary="Unassign a user (frees the seat and deactivates their machines)",
        responses=problem_responses(401, 403, 404, 422),
        description=(
            "204; the user's seat is free at once and every machine of theirs on this license "
            "is deactivated (reason `user_unassigned`; not counted toward the daily "
            "deactivation limit). 404 `LICENSE_USER_NOT_FOUND` when they are not assigned."
        ),
    )
    async def unassign(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID, user_id: uuid.UUID
    ) -> None:
        await service.unassign_user(session, principal, license_id, user_id)

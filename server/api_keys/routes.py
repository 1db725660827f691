from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.api_keys import service
from server.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from server.auth.principal import Principal, allow, provide_principal
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses

_admin = allow(scope="api-keys:write")


def _read(row: object) -> ApiKeyRead:
    return ApiKeyRead(**{f: getattr(row, f) for f in ApiKeyRead.__struct_fields__})


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["api-keys"]
    security = [{"bearer": []}]
    guards = [_admin]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @post(
        "/",
        summary="Create an admin API key (the key is shown only here)",
        description="A key can grant only scopes it holds itself (403 SCOPE_ESCALATION); "
        "a `*` key may grant any. Unknown scopes: 422 UNKNOWN_SCOPE.",
        responses=problem_responses(400, 401, 403, 422),
    )
    async def create(
        self, session: AsyncSession, principal: Principal, data: ApiKeyCreate
    ) -> ApiKeyCreated:
        created = await service.create_api_key(session, principal, data.name, data.scopes)
        fields = {f: getattr(created.row, f) for f in ApiKeyRead.__struct_fields__}
        return ApiKeyCreated(**fields, key=created.key)

    @get("/", summary="List admin API keys", responses=problem_responses(401, 403, 422))
    async def list_keys(
        self, session: AsyncSession, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[ApiKeyRead]:
        page = await service.list_api_keys(session, limit=limit, cursor=cursor)
        return PageOf(items=[_read(row) for row in page.items], next_cursor=page.next_cursor)

    @delete(
        "/{key_id:uuid}",
        summary="Revoke an admin API key at once",
        description="A key can revoke only keys whose scopes it holds (403 "
        "SCOPE_ESCALATION); a `*` key may revoke any.",
        responses=problem_responses(401, 403, 404),
    )
    async def revoke(self, session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> None:
        await service.revoke_api_key(session, principal, key_id)

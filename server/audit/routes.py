from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service
from server.audit.schemas import AuditEventRead
from server.auth.principal import Principal, allow, provide_principal
from server.models import AuditEvent
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.validation import query_text


def event_read(row: AuditEvent) -> AuditEventRead:
    return AuditEventRead(**{f: getattr(row, f) for f in AuditEventRead.__struct_fields__})


class AuditController(Controller):
    path = "/audit-events"
    tags = ["audit"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        guards=[allow(scope="audit:read", roles=("owner",))],
        summary="The audit log (oldest first)",
        responses=problem_responses(401, 403, 422),
        description="Admin API keys with audit:read see every event and may filter by "
        "organization; an organization's owner sees that organization's events.",
    )
    async def list_events(
        self,
        session: AsyncSession,
        principal: Principal,
        organization_id: Annotated[
            uuid.UUID | None, Parameter(description="Only this organization's events")
        ] = None,
        action: Annotated[str | None, query_text(64, "e.g. user.create")] = None,
        target_id: Annotated[str | None, query_text(64)] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> PageOf[AuditEventRead]:
        page = await service.list_events(
            session,
            principal,
            organization_id=organization_id,
            action=action,
            target_id=target_id,
            limit=limit,
            cursor=cursor,
        )
        return PageOf(items=[event_read(r) for r in page.items], next_cursor=page.next_cursor)

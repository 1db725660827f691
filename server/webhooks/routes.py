from __future__ import annotations

import uuid

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal, allow, provide_principal
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.settings import Settings
from server.webhooks import dispatcher, service
from server.webhooks.schemas import (
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointUpdate,
    SecretRotated,
    TestOutcome,
)

_read = allow(scope="webhooks:read")
_write = allow(scope="webhooks:write")


def _policy(settings: Settings) -> service.UrlPolicy:
    return service.UrlPolicy.from_settings(settings)


class WebhookController(Controller):
    path = "/"
    tags = ["webhooks"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @post(
        "/webhook-endpoints",
        guards=[_write],
        summary="Subscribe an endpoint (the signing secret is shown only here)",
        description="`events`: event types or prefixes (`license.*`); empty means every "
        "event. `organization_id`: only that organization's events. URLs must be https:// "
        "and must not resolve to a loopback, private, link-local or metadata address "
        "(422 `WEBHOOK_URL_FORBIDDEN`).",
        responses=problem_responses(400, 401, 403, 422),
    )
    async def create(
        self, session: AsyncSession, state: State, principal: Principal, data: EndpointCreate
    ) -> EndpointCreated:
        return await service.create_endpoint(
            session, principal, state.kek, _policy(state.settings), data
        )

    @get(
        "/webhook-endpoints",
        guards=[_read],
        summary="List webhook endpoints",
        responses=problem_responses(401, 403, 422),
    )
    async def list_endpoints(
        self, session: AsyncSession, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[EndpointRead]:
        page = await service.list_endpoints(session, limit=limit, cursor=cursor)
        return PageOf(items=page.items, next_cursor=page.next_cursor)

    @get(
        "/webhook-endpoints/{endpoint_id:uuid}",
        guards=[_read],
        summary="A webhook endpoint",
        responses=problem_responses(401, 403, 404),
    )
    async def get_endpoint(self, session: AsyncSession, endpoint_id: uuid.UUID) -> EndpointRead:
        return await service.get_endpoint(session, endpoint_id)

    @patch(
        "/webhook-endpoints/{endpoint_id:uuid}",
        guards=[_write],
        summary="Change an endpoint's URL, events or description; disable or enable it",
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def update(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        endpoint_id: uuid.UUID,
        data: EndpointUpdate,
    ) -> EndpointRead:
        return await service.update_endpoint(
            session, principal, _policy(state.settings), endpoint_id, data
        )

    @delete(
        "/webhook-endpoints/{endpoint_id:uuid}",
        guards=[_write],
        summary="Remove an endpoint and its pending deliveries",
        responses=problem_responses(401, 403, 404),
    )
    async def remove(
        self, session: AsyncSession, principal: Principal, endpoint_id: uuid.UUID
    ) -> None:
        await service.delete_endpoint(session, principal, endpoint_id)

    @post(
        "/webhook-endpoints/{endpoint_id:uuid}/rotate-secret",
        guards=[_write],
        status_code=200,
        summary="A new signing secret (both secrets sign for 24 hours)",
        responses=problem_responses(401, 403, 404),
    )
    async def rotate_secret(
        self, session: AsyncSession, state: State, principal: Principal, endpoint_id: uuid.UUID
    ) -> SecretRotated:
        return await service.rotate_secret(session, principal, state.kek, endpoint_id)

    @post(
        "/webhook-endpoints/{endpoint_id:uuid}/test",
        guards=[_write],
        status_code=200,
        summary="Send a webhook.test event now and answer with the attempt's outcome",
        responses=problem_responses(401, 403, 404),
    )
    async def test(
        self, session: AsyncSession, state: State, principal: Principal, endpoint_id: uuid.UUID
    ) -> TestOutcome:
        return await dispatcher.send_test(
            session, principal, state.settings, state.kek, endpoint_id
        )

    @get(
        "/webhook-endpoints/{endpoint_id:uuid}/deliveries",
        guards=[_read],
        summary="An endpoint's deliveries, oldest first",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def deliveries(
        self,
        session: AsyncSession,
        endpoint_id: uuid.UUID,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> PageOf[DeliveryRead]:
        page = await service.list_deliveries(session, endpoint_id, limit=limit, cursor=cursor)
        return PageOf(items=page.items, next_cursor=page.next_cursor)

    @post(
        "/webhook-deliveries/{delivery_id:int}/retry",
        guards=[_write],
        status_code=202,
        summary="Attempt a delivery again now",
        responses=problem_responses(401, 403, 404),
    )
    async def retry(self, session: AsyncSession, principal: Principal, delivery_id: int) -> None:
        await service.retry_delivery(session, principal, delivery_id)

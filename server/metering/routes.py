"""Usage metering over HTTP: products consume units (public: the license key authenticates
the call); admins read and reset a license's usage, and its organization reads it."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK
from sqlalchemy.ext.asyncio import AsyncSession

from server import idempotency
from server.auth.principal import EVERY_ROLE, Principal, allow, provide_principal
from server.metering import service
from server.metering.schemas import LicenseUsage, UsageRequest, UsageReset, UsageResponse
from server.observability import current_client_ip
from server.problems import problem_responses
from server.product_licensing.service import Caller

IdempotencyKeyHeader = Annotated[
    str | None,
    idempotency.key_header(
        "Required (422 `IDEMPOTENCY_KEY_REQUIRED` without it): a new unique string (e.g. a "
        "UUID) per consumption. Retrying with the same key and body within 24 hours returns "
        "the first answer and consumes nothing more; the same key with another body is 422 "
        "`IDEMPOTENCY_KEY_REUSED`."
    ),
]


class UsageController(Controller):
    """``POST /licenses/usage``: on the product licensing router, no bearer credential."""

    path = "/licenses"
    tags = ["product licensing"]

    @post(
        "/usage",
        status_code=HTTP_200_OK,
        summary="Consume units of a usage meter",
        responses=problem_responses(400, 403, 404, 409, 422, 429, 503),
        description=(
            "Consumes `amount` units (default 1; negative gives units back, never below zero; "
            "0 reads the count) of the license's `meter` in its current period, all or nothing: "
            "409 `USAGE_LIMIT` (with `used`, `limit`, `remaining`) when the limit would be "
            "passed, and nothing is consumed. 200 with `used`, `limit`, `remaining`, "
            "`period_ends_at` and a `usage+jwt` saying the same, with the trust material of the "
            "key that signed it (`key_certificate`, `key_revocations`, `root_endorsements`). "
            "The `Idempotency-Key` header is required; a repeat replays the first answer "
            "(`Idempotent-Replayed: true`). With `fingerprint`, only a machine holding a seat "
            "may consume (404 `NOT_ACTIVATED`). 404 `METER_NOT_FOUND` for a meter the license's "
            "tier does not have. Refused like activation otherwise: 404 `LICENSE_NOT_FOUND`, "
            "403 `LICENSE_SUSPENDED` / `LICENSE_REVOKED` / `LICENSE_EXPIRED` / "
            "`LICENSE_NOT_YET_VALID`, 422 `PRODUCT_MISMATCH`, 429 `RATE_LIMITED`."
        ),
    )
    async def consume(
        self,
        state: State,
        data: UsageRequest,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[UsageResponse]:
        caller = Caller(
            settings=state.settings,
            keyring=state.keyring,
            engine=state.side_engine,
            client_ip=current_client_ip(),
        )
        consumed = await service.consume(state.hot_pool, caller, state.kek, data, idempotency_key)
        headers = {"Idempotent-Replayed": "true"} if consumed.replayed else {}
        return Response(consumed.response, status_code=HTTP_200_OK, headers=headers)


class LicenseUsageController(Controller):
    """A license's usage: admins (``licenses:read`` / ``licenses:write``) and, for reading,
    the license's organization."""

    path = "/licenses/{license_id:uuid}/usage"
    tags = ["license admin"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @get(
        "/",
        guards=[allow(scope="licenses:read", roles=EVERY_ROLE)],
        summary="Usage of a license's meters",
        description=(
            "Per meter of the license's tier: its `period` and `limit` (the license's, when it "
            "overrides the tier's), the current period's `used` and `remaining`, and the past "
            f"periods' counts (`history`, newest first, at most {service.HISTORY_PERIODS}). "
            "Admins see every license; users their organization's (404 otherwise)."
        ),
        responses=problem_responses(401, 403, 404),
        cache=False,
    )
    async def read(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseUsage:
        return await service.license_usage(session, principal, license_id)

    @post(
        "/reset",
        status_code=HTTP_200_OK,
        guards=[allow(scope="licenses:write")],
        summary="Reset a license's usage in the current period",
        description=(
            "The current period of `meter` (or of every meter, without one) starts again from "
            "zero; past periods are kept. Audited (`license.usage_reset`, with the counts "
            "cleared), and the webhook event `license.usage_reset`. 404 `METER_NOT_FOUND` for "
            "a meter the license does not have."
        ),
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def reset(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        data: UsageReset,
    ) -> LicenseUsage:
        return await service.reset_usage(session, principal, license_id, data.meter)

"""Keyless machine trials: products start them (public), the vendor lists them (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import allow
from server.observability import current_client_ip
from server.pagination import Cursor, Limit
from server.problems import problem_responses
from server.trials import service
from server.trials.schemas import TrialPage, TrialRead, TrialRequest, TrialStarted, TrialStatus
from server.validation import query_text


class TrialController(Controller):
    """Starting a trial is public (no key, no login; every call counts against the caller's
    address); listing them is for admin keys. One controller, on the credential router:
    one path cannot live on two routers."""

    path = "/trials"
    tags = ["trials"]

    @post(
        "/",
        summary="Start this machine's keyless trial of a product",
        responses=problem_responses(400, 404, 409, 422, 429, 503),
        description=(
            "For a product with a tier that has `is_trial` and `self_serve_trials`: 201 with "
            "an `activation+jwt` (`trial: true`, the trial tier's features, `exp` = the "
            "trial's end) and `trial_ends_at`, with the trust material of the key that "
            "signed it (`key_certificate`, `key_revocations`, `root_endorsements`). One "
            "trial per product and machine, ever: the same fingerprint again gets the same "
            "trial back (200, same end, fresh token) while it runs, and 409 "
            "`TRIAL_ALREADY_USED` once it ended or converted. 404 `TRIAL_NOT_OFFERED` when "
            "the product offers no trial; 429 `RATE_LIMITED` when an address sends too many "
            "requests. Only the fingerprint's hash is stored."
        ),
    )
    async def start(self, state: State, data: TrialRequest) -> Response[TrialStarted]:
        caller = service.Caller(
            settings=state.settings,
            keyring=state.keyring,
            engine=state.side_engine,
            client_ip=current_client_ip(),
        )
        started = await service.start_trial(state.hot_pool, caller, data)
        status = HTTP_201_CREATED if started.created else HTTP_200_OK
        return Response(started.response, status_code=status)

    @get(
        "/",
        guards=[allow(scope="licenses:read")],
        security=[{"bearer": []}],
        summary="Keyless trials, with counts per status",
        description=(
            "Admin keys (`licenses:read`). Oldest first; `product` and `status` (`running`, "
            "`ended`, `converted`) filter the items; `counts` covers every trial of the "
            "product (of every product without `product`), with the conversion rate."
        ),
        responses=problem_responses(401, 403, 422),
    )
    async def list_trials(
        self,
        session: AsyncSession,
        product: Annotated[str | None, query_text(64)] = None,
        status: TrialStatus | None = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> TrialPage:
        return await service.list_trials(
            session, product=product, status=status, limit=limit, cursor=cursor
        )

    @get(
        "/{trial_id:uuid}",
        guards=[allow(scope="licenses:read")],
        security=[{"bearer": []}],
        summary="One keyless trial",
        responses=problem_responses(401, 403, 404),
    )
    async def get_trial(self, session: AsyncSession, trial_id: uuid.UUID) -> TrialRead:
        return await service.get_trial(session, trial_id)

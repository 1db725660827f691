"""The product-facing licensing API. Public: the license key authenticates the call."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.params import HeaderParameter, Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from server.db.hot_pool import pooled_transaction
from server.observability import current_client_ip
from server.problems import problem_responses
from server.product_licensing import service
from server.product_licensing.schemas import (
    ActivateRequest,
    ActivationResponse,
    CheckInRequest,
    CheckInResponse,
    DeactivateRequest,
    FeaturesResponse,
    ValidateRequest,
    ValidateResponse,
)
from server.validation import NO_NUL


def _caller(state: State) -> service.Caller:
    return service.Caller(
        settings=state.settings,
        keyring=state.keyring,
        engine=state.side_engine,
        client_ip=current_client_ip(),
        access_token_secret=state.access_token_secret,
    )


_TRUST = (
    " Every answer that carries a token also carries the trust material of the key that "
    "signed it: `key_certificate`, `key_revocations`, `root_endorsements` "
    '(docs/token-format.md, "Root of trust").'
)

_REFUSALS = (
    "Refusals are problem details with a `code`: 404 `LICENSE_NOT_FOUND`, 403 "
    "`LICENSE_SUSPENDED` / `LICENSE_REVOKED` / `LICENSE_EXPIRED` / `LICENSE_NOT_YET_VALID`, "
    "422 `PRODUCT_MISMATCH`; 429 `RATE_LIMITED` (with `Retry-After`) when an address sends "
    "too many unknown keys."
)


class LicensingController(Controller):
    path = "/licenses"
    tags = ["product licensing"]
    # The license key authenticates these calls; skip the bearer-credential middleware.
    # Validate and features are one autocommit statement on the licensing pool; activate and
    # check-in a read and then one autocommit statement that makes the change (its own
    # transaction); deactivate runs in ``pooled_transaction``. Every change commits before
    # the handler returns: no token is ever sent for a seat that did not commit.

    @post(
        "/validate",
        status_code=HTTP_200_OK,
        summary="Validate a license key",
        responses=problem_responses(400, 422, 429, 503),
        description=(
            "Always 200 for a license outcome: `valid`, `code` (VALID, NOT_FOUND, EXPIRED, "
            "SUSPENDED, REVOKED, NOT_YET_VALID, PRODUCT_MISMATCH, NOT_ACTIVATED), `detail`, the "
            "license summary and, when valid, a fresh `license+jwt` carrying the `nonce` sent. "
            "Never changes a seat. 422 for a malformed body; 429 for too many unknown keys."
            + _TRUST
        ),
    )
    async def validate(self, state: State, data: ValidateRequest) -> ValidateResponse:
        answer = await service.validate(state.hot_pool, _caller(state), data)
        state.validation_counter.count()  # in memory; written every few seconds
        return answer

    @post(
        "/activate",
        summary="Activate a machine (take a seat)",
        responses=problem_responses(400, 401, 403, 404, 409, 422, 429, 503),
        description=(
            "201 with an `activation+jwt` whose `exp` is the offline lease; 200 with the same "
            "activation and a fresh token when this fingerprint already holds a seat. Accepts "
            "an offline activation request file as it is, and answers with a body that is a "
            "valid activation response file. 409 `ACTIVATION_LIMIT` when every seat is taken. "
            "A license of a `user` tier (named users) also needs the user's access token "
            "(`Authorization: Bearer`, from `/api/v1/auth/login`): 401 `USER_TOKEN_REQUIRED` "
            "without one (`TOKEN_EXPIRED` / `INVALID_TOKEN` / `TOKEN_REVOKED` for one that "
            "does not stand), 403 `USER_NOT_ASSIGNED` when the user holds no seat of the "
            "license, 409 `USER_MACHINE_LIMIT` past the tier's `machines_per_user`, 409 "
            "`SEAT_OF_ANOTHER_USER` when this machine's seat is another user's; the token then "
            "carries the user's id (`usr`). " + _REFUSALS + _TRUST
        ),
    )
    async def activate(
        self,
        state: State,
        data: ActivateRequest,
        authorization: Annotated[
            str | None,
            HeaderParameter(
                name="Authorization",
                required=False,
                description="`Bearer <access token>`: licenses of a `user` tier only",
            ),
        ] = None,
    ) -> Response[ActivationResponse]:
        caller = _caller(state)
        user = service.named_user(caller, authorization)
        activated = await service.activate(state.hot_pool, caller, data, user=user)
        status = HTTP_201_CREATED if activated.created else HTTP_200_OK
        return Response(activated.response, status_code=status)

    @post(
        "/check-in",
        status_code=HTTP_200_OK,
        summary="Renew the lease of an activated machine",
        responses=problem_responses(400, 403, 404, 422, 429, 503),
        description=(
            "200 with a fresh `activation+jwt` and the new lease end; 404 `NOT_ACTIVATED` when "
            "the seat was freed (deactivated, or its lease ran out longer ago than the tier's "
            "grace period). " + _REFUSALS + _TRUST
        ),
    )
    async def check_in(self, state: State, data: CheckInRequest) -> CheckInResponse:
        return await service.check_in(state.hot_pool, _caller(state), data)

    @post(
        "/deactivate",
        status_code=HTTP_204_NO_CONTENT,
        summary="Deactivate a machine (free its seat)",
        responses=problem_responses(400, 404, 409, 422, 429, 503),
        description=(
            "204; the seat is free at once. 404 `NOT_ACTIVATED` when this machine holds no seat; "
            "409 `DEACTIVATION_LIMIT` past the tier's deactivations per 24 hours. Accepts an "
            "offline deactivation request file as it is."
        ),
    )
    async def deactivate(self, state: State, data: DeactivateRequest) -> None:
        async with pooled_transaction(state.hot_pool) as connection:
            await service.deactivate(connection, _caller(state), data)

    @get(
        "/features",
        summary="Features of a tier, or of one license",
        responses=problem_responses(400, 403, 404, 422, 429, 503),
        description=(
            "`?product=P&tier=T`: the tier's features. `?product=P&license_key=K` instead: the "
            "features of that license (refused like activation when it cannot be used)."
        ),
        cache=False,
    )
    async def features(
        self,
        state: State,
        product: Annotated[str, Parameter(min_length=1, max_length=64, pattern=NO_NUL)],
        tier: Annotated[str | None, Parameter(min_length=1, max_length=64, pattern=NO_NUL)] = None,
        license_key: Annotated[
            str | None, Parameter(min_length=1, max_length=128, pattern=NO_NUL)
        ] = None,
    ) -> FeaturesResponse:
        return await service.features(
            state.hot_pool,
            _caller(state),
            product=product,
            tier=tier,
            license_key=license_key,
        )

"""License management API: admins issue and manage licenses; customers see their own."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.spec import Example
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from server import idempotency
from server.auth.principal import EVERY_ROLE, MANAGERS, Principal, allow, provide_principal
from server.license_admin import service
from server.license_admin.schemas import (
    ActivationRead,
    ChangeTierRequest,
    LicenseCreate,
    LicenseCreated,
    LicenseRead,
    LicenseToken,
    LicenseUpdate,
    RenewRequest,
    Status,
)
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.validation import NO_NUL, parse_query_datetime, query_datetime, query_text

_admin_read = allow(scope="licenses:read")
_admin_write = allow(scope="licenses:write")
_everyone_read = allow(scope="licenses:read", roles=EVERY_ROLE)
_managers_read = allow(scope="licenses:read", roles=MANAGERS)
_managers_write = allow(scope="licenses:write", roles=MANAGERS)

IdempotencyKeyHeader = Annotated[
    str | None,
    idempotency.key_header(
        "Any unique string (e.g. a UUID). Retrying with the same key and body within 24 "
        "hours returns the first response and issues nothing new; the same key with "
        "another body is 422 IDEMPOTENCY_KEY_REUSED."
    ),
]

_TRANSITION_ERRORS = problem_responses(401, 403, 404, 409)


class LicenseController(Controller):
    path = "/licenses"
    tags = ["license admin"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @post(
        "/",
        guards=[_admin_write],
        summary="Issue a license (the key is shown only here)",
        description=(
            "`expires_at` defaults to now + `duration_days`, else the tier's duration; "
            "neither means perpetual. `max_activations` and `features` override the tier's, "
            "and so does `max_users` for a tier of named users (422 MAX_USERS_NOT_APPLICABLE "
            "for a tier that counts machines). Unknown organization, product or tier: 422 "
            "UNKNOWN_ORGANIZATION / UNKNOWN_PRODUCT / UNKNOWN_TIER. A trial tier's license is "
            "issued once per organization and product (409 TRIAL_ALREADY_USED) unless "
            "`allow_repeat_trial`. "
            "A replayed response carries `Idempotent-Replayed: true`."
        ),
        responses=problem_responses(400, 401, 403, 409, 422),
    )
    async def issue(
        self,
        session: AsyncSession,
        state: State,
        principal: Principal,
        data: LicenseCreate,
        idempotency_key: IdempotencyKeyHeader = None,
    ) -> Response[LicenseCreated]:
        issued = await service.issue_license_once(
            session, state.kek, principal, data, idempotency_key
        )
        headers = {"Idempotent-Replayed": "true"} if issued.replayed else {}
        return Response(issued.license, status_code=issued.status_code, headers=headers)

    @get(
        "/",
        guards=[_everyone_read],
        summary="List licenses",
        description=(
            "Admins (`licenses:read`) see every organization's and may filter by "
            "`organization_id`; users see their organization's. Filters combine: `product`, "
            "`status`, `expires_before`, `key_prefix`, `q`. A bad filter value is 422 "
            "`VALIDATION_ERROR` naming the parameter."
        ),
        responses=problem_responses(401, 403, 422),
    )
    async def list_licenses(
        self,
        session: AsyncSession,
        principal: Principal,
        organization_id: uuid.UUID | None = None,
        product: Annotated[str | None, query_text(64)] = None,
        status: Status | None = None,
        expires_before: Annotated[
            str | None,
            query_datetime(
                "Licenses that expire strictly before this time (RFC 3339 with an offset, "
                "e.g. 2027-01-31T00:00:00Z), already expired ones included; perpetual "
                "licenses never match. Combine with `status=active` for those still running."
            ),
        ] = None,
        key_prefix: Annotated[
            str | None,
            Parameter(
                pattern=service.KEY_PREFIX_PATTERN,
                max_length=40,
                description=(
                    "The key's display prefix as stored and shown (`LK-XXXXX`, the key's first "
                    "group); case and surrounding spaces do not matter."
                ),
                examples=[Example(value="LK-7QX2M")],
            ),
        ] = None,
        q: Annotated[
            str | None,
            Parameter(
                min_length=1,
                max_length=service.MAX_SEARCH_LENGTH,
                pattern=NO_NUL,
                description=(
                    "Free text, case-insensitive: the license matches when its organization's "
                    "name or any string or number in its metadata (at any depth) contains it. "
                    "`%` and `_` are plain characters."
                ),
            ),
        ] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> PageOf[LicenseRead]:
        page = await service.list_licenses(
            session,
            principal,
            organization_id=organization_id,
            product=product,
            status=status,
            expires_before=parse_query_datetime(expires_before, "expires_before"),
            key_prefix=key_prefix,
            q=q,
            limit=limit,
            cursor=cursor,
        )
        return PageOf(items=page.items, next_cursor=page.next_cursor)

    @get(
        "/{license_id:uuid}",
        guards=[_everyone_read],
        summary="Get a license",
        responses=problem_responses(401, 403, 404),
    )
    async def get_license(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseRead:
        return await service.get_license(session, principal, license_id)

    @patch(
        "/{license_id:uuid}",
        guards=[_admin_write],
        summary="Change a license's expiry, seats, features or metadata",
        description=(
            "Only the fields present change. `null` for `expires_at` makes the license "
            "perpetual; `null` for `max_activations` or `max_users` goes back to the tier's. "
            "`features` and `metadata` replace the license's own object. `max_users` never "
            "goes below the users assigned (409 USERS_ASSIGNED, with `assigned`, `max_users` "
            "and `excess`) and is only for a tier of named users (422 "
            "MAX_USERS_NOT_APPLICABLE). A revoked license cannot change (409 LICENSE_REVOKED)."
        ),
        responses=problem_responses(400, 401, 403, 404, 409, 422),
    )
    async def update_license(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        data: LicenseUpdate,
    ) -> LicenseRead:
        return await service.update_license(session, principal, license_id, data)

    @post(
        "/{license_id:uuid}/suspend",
        guards=[_admin_write],
        status_code=200,
        summary="Suspend a license",
        description="active -> suspended. 409 ALREADY_SUSPENDED or LICENSE_REVOKED otherwise.",
        responses=_TRANSITION_ERRORS,
    )
    async def suspend(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseRead:
        return await service.suspend_license(session, principal, license_id)

    @post(
        "/{license_id:uuid}/reinstate",
        guards=[_admin_write],
        status_code=200,
        summary="Reinstate a suspended license",
        description="suspended -> active. 409 NOT_SUSPENDED or LICENSE_REVOKED otherwise.",
        responses=_TRANSITION_ERRORS,
    )
    async def reinstate(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseRead:
        return await service.reinstate_license(session, principal, license_id)

    @post(
        "/{license_id:uuid}/revoke",
        guards=[_admin_write],
        status_code=200,
        summary="Revoke a license (final)",
        description="active or suspended -> revoked, for good. 409 ALREADY_REVOKED otherwise.",
        responses=_TRANSITION_ERRORS,
    )
    async def revoke(
        self, session: AsyncSession, principal: Principal, license_id: uuid.UUID
    ) -> LicenseRead:
        return await service.revoke_license(session, principal, license_id)

    @post(
        "/{license_id:uuid}/renew",
        guards=[_admin_write],
        status_code=200,
        summary="Renew a license",
        description=(
            "Exactly one of `expires_at` (later than now and than the current expiry) or "
            "`duration_days` (added to the current expiry, or to now once it has passed). "
            "409 LICENSE_REVOKED or LICENSE_PERPETUAL."
        ),
        responses=problem_responses(400, 401, 403, 404, 409, 422),
    )
    async def renew(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        data: RenewRequest,
    ) -> LicenseRead:
        return await service.renew_license(session, principal, license_id, data)

    @post(
        "/{license_id:uuid}/change-tier",
        guards=[_admin_write],
        status_code=200,
        summary="Move a license to another tier of its product (same key, same machines)",
        description=(
            "Features and seats come from the new tier (the license's own overrides are kept "
            "unless `max_activations` / `max_users` / `expires_at` are given). 409 "
            "USERS_ASSIGNED when the new `max_users` is below the users assigned. 409 "
            "SEATS_IN_USE (with "
            "`activations_count`, `max_activations` and `excess`) when more machines hold a "
            "seat than the new tier allows, unless `release` is `least_recently_seen`, which "
            "frees the extra seats, least recently checked in first (each one audited). 422 "
            "PRODUCT_CHANGE_UNSUPPORTED for another product, UNKNOWN_TIER for an unknown "
            "tier; 409 LICENSE_REVOKED. Tokens already issued keep their claims until they "
            "expire; the next validate or check-in answers with the new plan."
        ),
        responses=problem_responses(400, 401, 403, 404, 409, 422),
    )
    async def change_tier(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        data: ChangeTierRequest,
    ) -> LicenseRead:
        return await service.change_tier(session, principal, license_id, data)

    @get(
        "/{license_id:uuid}/token",
        guards=[_managers_read],
        summary="A signed license token for offline use",
        description=(
            "A `license+jwt` signed with the active Ed25519 key, not bound to a machine, "
            "valid until the license expires or the configured token lifetime ends, whichever "
            "is first, with the trust material of the key that signed it (`key_certificate`, "
            '`key_revocations`, `root_endorsements`: docs/token-format.md, "Root of trust"). '
            "Verify it with `licentia-verifier` against the JWKS or the root. 403 "
            "LICENSE_SUSPENDED / LICENSE_REVOKED / LICENSE_EXPIRED / LICENSE_NOT_YET_VALID when "
            "the license cannot be used. Admins (`licenses:read`) or the organization's "
            "owners and admins."
        ),
        cache=False,
        responses=problem_responses(401, 403, 404, 503),
    )
    async def token(
        self, session: AsyncSession, state: State, principal: Principal, license_id: uuid.UUID
    ) -> LicenseToken:
        return await service.license_token(
            session,
            principal,
            license_id,
            keyring=state.keyring,
            issuer=state.settings.issuer,
            lifetime_seconds=state.settings.license_token_ttl_seconds,
        )

    @get(
        "/{license_id:uuid}/activations",
        guards=[_everyone_read],
        summary="Machines activated on a license",
        description="Every activation, live or deactivated; `holds_seat` tells which count.",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def list_activations(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> PageOf[ActivationRead]:
        page = await service.list_activations(
            session, principal, license_id, limit=limit, cursor=cursor
        )
        return PageOf(items=page.items, next_cursor=page.next_cursor)

    @delete(
        "/{license_id:uuid}/activations/{activation_id:uuid}",
        guards=[_managers_write],
        summary="Deactivate a machine (frees its seat)",
        description=(
            "Admins (`licenses:write`) or the organization's owners and admins; the latter "
            "within the tier's `max_deactivations_per_day` (409 DEACTIVATION_LIMIT). "
            "409 ALREADY_DEACTIVATED when the machine no longer holds a seat."
        ),
        responses=problem_responses(401, 403, 404, 409),
    )
    async def deactivate(
        self,
        session: AsyncSession,
        principal: Principal,
        license_id: uuid.UUID,
        activation_id: uuid.UUID,
    ) -> None:
        await service.deactivate(session, principal, license_id, activation_id)

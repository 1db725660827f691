"""``/console``: the vendor's staff. Thin handlers: parse the form, call the same service the
API calls, render a template. What a role may do is its scopes (``STAFF_ROLE_SCOPES``)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import service as audit
from server.auth import service as auth
from server.auth.principal import (
    STAFF_ROLE_SCOPES,
    STAFF_SUPPORT_SCOPE,
    Guard,
    Principal,
    staff_principal,
)
from server.console import service
from server.errors import (
    DomainError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from server.license_admin import service as licenses
from server.license_admin.schemas import (
    ChangeTierRequest,
    LicenseCreate,
    LicenseUpdate,
    RenewRequest,
    Status,
)
from server.license_users import service as license_users
from server.license_users.schemas import LicenseUserAssign
from server.metering import service as metering
from server.organizations import service as organizations
from server.organizations.schemas import OrganizationCreate
from server.problems import problem_for
from server.products import service as products
from server.products.schemas import ProductCreate, ProductUpdate, TierCreate, TierUpdate
from server.projects import service as projects
from server.signing_keys import service as signing_keys
from server.trials import service as trials
from server.trials.schemas import TrialStatus
from server.users import service as users
from server.web import (
    SessionFacts,
    cleared_cookie,
    end_session,
    error_handlers,
    form_struct,
    form_text,
    is_htmx,
    next_page,
    open_session,
    page,
    refusal,
    see_other,
    session_cookie,
    session_token,
    web_middleware,
)
from server.webhooks import service as webhooks
from server.webhooks.schemas import EVENT_TYPES, EndpointCreate, EndpointUpdate

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
ManyForm = Annotated[dict[str, str | list[str]], Body(media_type=RequestEncodingType.URL_ENCODED)]
"""A form whose checkboxes share a name (a repeated field is a list)."""
STATUSES: tuple[Status, ...] = ("active", "suspended", "revoked", "expired")
TRIAL_STATUSES: tuple[TrialStatus, ...] = ("running", "ended", "converted")
TIER_FIELDS = (
    "name",
    "max_activations",
    "duration_days",
    "offline_lease_days",
    "lease_grace_days",
    "max_deactivations_per_day",
    "expiry_notice_days",
    "features",
    "expiry_behavior",
)
TIER_FLAGS = ("is_trial", "self_serve_trials")
EVENT_PREFIXES = tuple(sorted({t.split(".", 1)[0] + ".*" for t in EVENT_TYPES}))
PAGE = 50
PICKER_LIMIT = 500
"""Organizations an organization picker lists at once; past that, a name search narrows it."""
MEMBER_LIMIT = 500
"""Members of an organization the named-user form offers at once."""


def principal_for(facts: SessionFacts) -> Principal | None:
    """A console session acts as its staff member, with their role's scopes."""
    if facts.role not in STAFF_ROLE_SCOPES:
        return None
    return staff_principal(facts.subject_id, facts.role, facts.token_generation)


def _staff(connection: ASGIConnection) -> Principal:
    principal = connection.scope.get("user")
    if not isinstance(principal, Principal) or principal.kind != "staff":
        raise Unauthenticated("Sign in to the console", code="UNAUTHENTICATED")
    return principal


def can(scope: str) -> Guard:
    """Guard: a signed-in staff member whose role holds ``scope``."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        if not _staff(connection).has_scope(scope):
            raise PermissionDenied("Your role does not allow this", code="INSUFFICIENT_ROLE")

    return guard


def _me(request: Request) -> Principal:
    return _staff(request)


def _page(request: Request, name: str, *, status_code: int = 200, **context: Any) -> Template:
    return page(
        f"console/{name}",
        {"me": _me(request), "area": "console", **context},
        status_code=status_code,
    )


def _uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidInput("Not a valid id", code="VALIDATION_ERROR") from None


def _day(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{field}: not a date (YYYY-MM-DD)", code="VALIDATION_ERROR") from None


class ConsoleAuthController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login")
    async def login_form(self, request: Request) -> Template:
        return page("console/login.html", {"area": "console"})

    @post("/login")
    async def login(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Template | Response[Any]:
        state = request.app.state
        try:
            account = await auth.authenticate_staff(
                session,
                state.side_engine,
                state.settings,
                email=form_text(data, "email"),
                password=data.get("password", ""),
            )
        except (Unauthenticated, RateLimited) as exc:
            status = 429 if isinstance(exc, RateLimited) else 401
            return page(
                "console/login.html",
                {"area": "console", "error": exc.detail, "email": form_text(data, "email")},
                status_code=status,
            )
        token = await open_session(
            session,
            SessionFacts("console", account.id, None, account.role, account.token_generation),
        )
        return see_other(request, "/console", [session_cookie("console", token)])

    @post("/logout")
    async def logout(self, request: Request, session: AsyncSession) -> Response[Any]:
        token = session_token(request, "console")
        if token:
            await end_session(session, "console", token)
        return see_other(request, "/console/login", [cleared_cookie("console")])


class ConsoleController(Controller):
    path = "/"
    include_in_schema = False
    guards = [can("licenses:read")]

    @get("/")
    async def overview(self, request: Request, session: AsyncSession) -> Template:
        figures = await service.overview(session)
        now = datetime.now(UTC)
        expiring = await licenses.list_licenses(
            session,
            _me(request),
            status="active",
            expires_before=now + service.EXPIRING_WITHIN,
            limit=PAGE,
        )
        return _page(
            request,
            "overview.html",
            figures=figures,
            expiring=expiring.items,
            peak=max(n for _, n in figures.activations_per_day),
            validation_peak=max(n for _, n in figures.validations_per_hour),
        )

    @get("/account")
    async def account(self, request: Request) -> Template:
        return _page(request, "account.html")

    @post("/account/password")
    async def change_password(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        await service.change_password(
            session,
            _me(request),
            current=data.get("current_password", ""),
            new=data.get("new_password", ""),
        )
        # Every session of the account has ended, this one too: sign in again.
        return see_other(request, "/console/login", [cleared_cookie("console")])

    # --- organizations ---------------------------------------------------------------------

    @get("/organizations", guards=[can("organizations:read")])
    async def organizations(
        self,
        request: Request,
        session: AsyncSession,
        q: str | None = None,
        cursor: str | None = None,
    ) -> Template:
        found = await organizations.list_organizations(
            session, _me(request), limit=PAGE, cursor=cursor, search=(q or "").strip() or None
        )
        return _page(
            request,
            "organizations.html",
            organizations=found.items,
            q=q or "",
            next_page=next_page(request, found.next_cursor),
        )

    @post("/organizations", guards=[can("organizations:write")])
    async def create_organization(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        fields = form_struct({"name": form_text(data, "name")}, OrganizationCreate)
        made = await organizations.create_organization(session, _me(request), fields.name)
        return see_other(request, f"/console/organizations/{made.id}")

    @get("/organizations/{organization_id:uuid}", guards=[can("organizations:read")])
    async def organization(
        self, request: Request, session: AsyncSession, organization_id: uuid.UUID
    ) -> Template:
        me = _me(request)
        organization = await organizations.get_organization(session, me, organization_id)
        return _page(
            request,
            "organization.html",
            organization=organization,
            licenses=(
                await licenses.list_licenses(
                    session, me, organization_id=organization_id, limit=PAGE
                )
            ).items,
            users=(
                await users.list_users(
                    session, me, organization_id=organization_id, limit=PAGE, cursor=None
                )
            ).items,
            projects=(
                await projects.list_projects(
                    session, me, organization_id=organization_id, limit=PAGE, cursor=None
                )
            ).items,
        )

    # --- licenses --------------------------------------------------------------------------

    @get("/licenses")
    async def licenses(
        self,
        request: Request,
        session: AsyncSession,
        prefix: str | None = None,
        organization: str | None = None,
        product: str | None = None,
        tier: str | None = None,
        status: str | None = None,
        expires_before: str | None = None,
        cursor: str | None = None,
        org_q: str | None = None,
    ) -> Template:
        if status and status not in STATUSES:
            raise InvalidInput(f"status: one of {', '.join(STATUSES)}", code="VALIDATION_ERROR")
        found = await licenses.list_licenses(
            session,
            _me(request),
            organization_id=_uuid(organization),
            product=product or None,
            tier=tier or None,
            status=status or None,
            key_prefix=(prefix or "").strip() or None,
            expires_before=_day(expires_before, "expires_before"),
            limit=PAGE,
            cursor=cursor,
        )
        filters = {
            "prefix": prefix or "",
            "organization": organization or "",
            "product": product or "",
            "tier": tier or "",
            "status": status or "",
            "expires_before": expires_before or "",
        }
        if is_htmx(request):
            return _page(request, "_license_rows.html", licenses=found.items)
        return _page(
            request,
            "licenses.html",
            licenses=found.items,
            filters=filters,
            statuses=STATUSES,
            picker=await _organization_picker(session, request, _uuid(organization), org_q),
            next_page=next_page(request, found.next_cursor),
        )

    @get("/licenses/new", guards=[can("licenses:write")])
    async def new_license(
        self,
        request: Request,
        session: AsyncSession,
        organization: str | None = None,
        org_q: str | None = None,
    ) -> Template:
        return _page(
            request,
            "license_new.html",
            catalog=await _catalog(session),
            picker=await _organization_picker(session, request, _uuid(organization), org_q),
        )

    @post("/licenses", guards=[can("licenses:write")])
    async def issue(self, request: Request, session: AsyncSession, data: Form) -> Template:
        product, _, tier = form_text(data, "plan").partition("/")
        fields: dict[str, Any] = {
            "organization_id": form_text(data, "organization_id"),
            "product": product,
            "tier": tier,
            "expires_at": form_text(data, "expires_at"),
            "max_activations": form_text(data, "max_activations"),
            "max_users": form_text(data, "max_users"),
            "metadata": form_text(data, "metadata"),
        }
        created = await licenses.issue_license(
            session, _me(request), form_struct(fields, LicenseCreate)
        )
        # The key is in this response only: it is not stored, and the page is not cached.
        return _page(request, "license_issued.html", license=created)

    @get("/licenses/{license_id:uuid}")
    async def license(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID
    ) -> Template:
        return await _license_page(request, session, license_id)

    @post("/licenses/{license_id:uuid}/usage/reset", guards=[can("licenses:write")])
    async def reset_usage(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        meter = data.get("meter") or None
        await metering.reset_usage(session, _me(request), license_id, meter)
        return see_other(request, f"/console/licenses/{license_id}")

    # --- named-user seats (the license page's "_license_users.html") ------------------------

    @post("/licenses/{license_id:uuid}/users", guards=[can("licenses:write")])
    async def assign_user(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Template | Response[Any]:
        async def assign() -> None:
            wanted = form_struct({"user_id": form_text(data, "user_id")}, LicenseUserAssign)
            await license_users.assign_user(session, _me(request), license_id, wanted.user_id)

        return await _named_user_change(request, session, license_id, assign)

    @post(
        "/licenses/{license_id:uuid}/users/{user_id:uuid}/remove",
        guards=[can("licenses:write")],
    )
    async def unassign_user(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, user_id: uuid.UUID
    ) -> Template | Response[Any]:
        async def unassign() -> None:
            await license_users.unassign_user(session, _me(request), license_id, user_id)

        return await _named_user_change(request, session, license_id, unassign)

    @post("/licenses/{license_id:uuid}/suspend", guards=[can(STAFF_SUPPORT_SCOPE)])
    async def suspend(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID
    ) -> Response[Any]:
        await licenses.suspend_license(session, _me(request), license_id)
        return see_other(request, f"/console/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/reinstate", guards=[can(STAFF_SUPPORT_SCOPE)])
    async def reinstate(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID
    ) -> Response[Any]:
        await licenses.reinstate_license(session, _me(request), license_id)
        return see_other(request, f"/console/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/revoke", guards=[can("licenses:write")])
    async def revoke(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID
    ) -> Response[Any]:
        await licenses.revoke_license(session, _me(request), license_id)
        return see_other(request, f"/console/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/renew", guards=[can("licenses:write")])
    async def renew(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        renewal = form_struct({"duration_days": form_text(data, "duration_days")}, RenewRequest)
        await licenses.renew_license(session, _me(request), license_id, renewal)
        return see_other(request, f"/console/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/change-tier", guards=[can("licenses:write")])
    async def change_tier(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        fields: dict[str, Any] = {
            "tier": form_text(data, "tier"),
            "release": form_text(data, "release"),
            # Checked: the license's own seat count gives way to the new tier's (null).
            "max_activations": None if form_text(data, "tier_seats") else "",
        }
        await licenses.change_tier(
            session, _me(request), license_id, form_struct(fields, ChangeTierRequest)
        )
        return see_other(request, f"/console/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/terms", guards=[can("licenses:write")])
    async def terms(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        # An empty field changes nothing (the form shows the terms in force).
        fields = {
            name: form_text(data, name) for name in ("max_activations", "max_users", "features")
        }
        await licenses.update_license(
            session, _me(request), license_id, form_struct(fields, LicenseUpdate)
        )
        return see_other(request, f"/console/licenses/{license_id}")

    @post(
        "/licenses/{license_id:uuid}/activations/{activation_id:uuid}/deactivate",
        guards=[can(STAFF_SUPPORT_SCOPE)],
    )
    async def free_seat(
        self,
        request: Request,
        session: AsyncSession,
        license_id: uuid.UUID,
        activation_id: uuid.UUID,
    ) -> Response[Any]:
        await licenses.deactivate(session, _me(request), license_id, activation_id)
        return see_other(request, f"/console/licenses/{license_id}")

    # --- products, keys, audit ---------------------------------------------------------------

    @get("/products", guards=[can("products:read")])
    async def products(self, request: Request, session: AsyncSession) -> Template:
        return _page(request, "products.html", catalog=await _catalog(session))

    @post("/products", guards=[can("products:write")])
    async def create_product(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        fields = {name: form_text(data, name) for name in ("code", "name")}
        made = await products.create_product(
            session, _me(request), form_struct(fields, ProductCreate)
        )
        return see_other(request, f"/console/products/{made.code}/new-tier")

    @post("/products/{product:str}", guards=[can("products:write")])
    async def rename_product(
        self, request: Request, session: AsyncSession, product: str, data: Form
    ) -> Response[Any]:
        # The form always holds the name: left empty, it is missing (not "no change").
        name = form_text(data, "name")
        if not name:
            raise InvalidInput("name: a product needs a name", code="VALIDATION_ERROR")
        await products.update_product(
            session, _me(request), product, form_struct({"name": name}, ProductUpdate)
        )
        return see_other(request, "/console/products")

    @get("/products/{product:str}/new-tier", guards=[can("products:write")])
    async def new_tier(self, request: Request, session: AsyncSession, product: str) -> Template:
        found = await products.get_product(session, product)
        return _page(request, "tier.html", product=found, tier=None)

    @post("/products/{product:str}/tiers", guards=[can("products:write")])
    async def create_tier(
        self, request: Request, session: AsyncSession, product: str, data: Form
    ) -> Response[Any]:
        fields = _tier_fields(data)
        fields["code"] = form_text(data, "code")
        await products.create_tier(session, _me(request), product, form_struct(fields, TierCreate))
        return see_other(request, "/console/products")

    @get("/products/{product:str}/tiers/{tier:str}", guards=[can("products:write")])
    async def edit_tier(
        self, request: Request, session: AsyncSession, product: str, tier: str
    ) -> Template:
        found = await products.get_product(session, product)
        return _page(
            request,
            "tier.html",
            product=found,
            tier=await products.get_tier(session, product, tier),
        )

    @post("/products/{product:str}/tiers/{tier:str}", guards=[can("products:write")])
    async def update_tier(
        self, request: Request, session: AsyncSession, product: str, tier: str, data: Form
    ) -> Response[Any]:
        await products.update_tier(
            session, _me(request), product, tier, form_struct(_tier_fields(data), TierUpdate)
        )
        return see_other(request, "/console/products")

    @get("/keys", guards=[can("products:read")])
    async def keys(self, request: Request, session: AsyncSession) -> Template:
        return _page(request, "keys.html", keys=await signing_keys.list_keys(session))

    @post("/keys/rotate", guards=[can("keys:write")])
    async def rotate(self, request: Request, session: AsyncSession) -> Response[Any]:
        state = request.app.state
        await signing_keys.rotate(
            session,
            _me(request),
            state.kek,
            policy=signing_keys.CertificatePolicy.from_settings(state.settings),
        )
        response = see_other(request, "/console/keys")
        # As the API does: this process forgets its key once the rotation has committed.
        response.background = BackgroundTask(_forget_key, state.keyring)
        return response

    @get("/audit", guards=[can("audit:read")])
    async def audit_log(
        self,
        request: Request,
        session: AsyncSession,
        action: str | None = None,
        organization: str | None = None,
        target: str | None = None,
        cursor: str | None = None,
        org_q: str | None = None,
    ) -> Template:
        events = await audit.list_events(
            session,
            _me(request),
            organization_id=_uuid(organization),
            action=(action or "").strip() or None,
            target_id=(target or "").strip() or None,
            limit=PAGE,
            cursor=cursor,
            newest_first=True,
        )
        filters = {
            "action": action or "",
            "organization": organization or "",
            "target": target or "",
        }
        return _page(
            request,
            "audit.html",
            events=events.items,
            filters=filters,
            picker=await _organization_picker(session, request, _uuid(organization), org_q),
            next_page=next_page(request, events.next_cursor),
        )

    # --- keyless trials ----------------------------------------------------------------------

    @get("/trials")
    async def trials(
        self,
        request: Request,
        session: AsyncSession,
        product: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
    ) -> Template:
        if status and status not in TRIAL_STATUSES:
            raise InvalidInput(
                f"status: one of {', '.join(TRIAL_STATUSES)}", code="VALIDATION_ERROR"
            )
        found = await trials.list_trials(
            session,
            product=(product or "").strip() or None,
            status=status or None,
            limit=PAGE,
            cursor=cursor,
        )
        return _page(
            request,
            "trials.html",
            trials=found.items,
            counts=found.counts,
            filters={"product": product or "", "status": status or ""},
            statuses=TRIAL_STATUSES,
            next_page=next_page(request, found.next_cursor),
        )


class ConsoleWebhookController(Controller):
    """``/console/webhooks``: the endpoints, through the webhook service (admins only:
    ``webhooks:read`` / ``webhooks:write`` are held by no other staff role)."""

    path = "/webhooks"
    include_in_schema = False
    guards = [can("webhooks:read")]

    @get("/")
    async def endpoints(
        self,
        request: Request,
        session: AsyncSession,
        cursor: str | None = None,
        organization: str | None = None,
        org_q: str | None = None,
    ) -> Template:
        found = await webhooks.list_endpoints(session, limit=PAGE, cursor=cursor)
        return _page(
            request,
            "webhooks.html",
            endpoints=found.items,
            organization_names=await organizations.names(
                session, _me(request), (e.organization_id for e in found.items)
            ),
            event_types=EVENT_TYPES,
            event_prefixes=EVENT_PREFIXES,
            picker=await _organization_picker(session, request, _uuid(organization), org_q),
            next_page=next_page(request, found.next_cursor),
        )

    @post("/", guards=[can("webhooks:write")])
    async def create(self, request: Request, session: AsyncSession, data: ManyForm) -> Template:
        state = request.app.state
        fields: dict[str, Any] = {
            "url": form_text(data, "url"),
            "events": _many(data, "events"),
            "organization_id": form_text(data, "organization_id"),
            "description": form_text(data, "description"),
        }
        created = await webhooks.create_endpoint(
            session,
            _me(request),
            state.kek,
            webhooks.UrlPolicy.from_settings(state.settings),
            form_struct(fields, EndpointCreate),
        )
        # The secret is in this response only (stored encrypted, never shown again).
        return _page(request, "webhook_secret.html", endpoint=created, secret=created.secret)

    @get("/{endpoint_id:uuid}")
    async def endpoint(
        self,
        request: Request,
        session: AsyncSession,
        endpoint_id: uuid.UUID,
        cursor: str | None = None,
    ) -> Template:
        return await _endpoint_page(request, session, endpoint_id, cursor)

    @post("/{endpoint_id:uuid}", guards=[can("webhooks:write")])
    async def update(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID, data: ManyForm
    ) -> Response[Any]:
        state = request.app.state
        fields: dict[str, Any] = {
            "url": form_text(data, "url"),
            "events": _many(data, "events"),
            "description": form_text(data, "description"),
        }
        changes = form_struct(fields, EndpointUpdate)  # no box ticked: every event
        if not fields["description"]:
            changes.description = ""
        await webhooks.update_endpoint(
            session,
            _me(request),
            webhooks.UrlPolicy.from_settings(state.settings),
            endpoint_id,
            changes,
        )
        return see_other(request, f"/console/webhooks/{endpoint_id}")

    @post("/{endpoint_id:uuid}/enable", guards=[can("webhooks:write")])
    async def enable(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID
    ) -> Response[Any]:
        return await _set_enabled(request, session, endpoint_id, True)

    @post("/{endpoint_id:uuid}/disable", guards=[can("webhooks:write")])
    async def disable(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID
    ) -> Response[Any]:
        return await _set_enabled(request, session, endpoint_id, False)

    @post("/{endpoint_id:uuid}/delete", guards=[can("webhooks:write")])
    async def remove(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID
    ) -> Response[Any]:
        await webhooks.delete_endpoint(session, _me(request), endpoint_id)
        return see_other(request, "/console/webhooks")

    @post("/{endpoint_id:uuid}/rotate-secret", guards=[can("webhooks:write")])
    async def rotate_secret(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID
    ) -> Template:
        rotated = await webhooks.rotate_secret(
            session, _me(request), request.app.state.kek, endpoint_id
        )
        endpoint = await webhooks.get_endpoint(session, endpoint_id)
        return _page(
            request,
            "webhook_secret.html",
            endpoint=endpoint,
            secret=rotated.secret,
            rotated=rotated,
        )

    @post("/{endpoint_id:uuid}/test", guards=[can("webhooks:write")])
    async def send_test(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID
    ) -> Template:
        state = request.app.state
        outcome = await webhooks.send_test(
            session, _me(request), state.settings, state.kek, endpoint_id
        )
        return await _endpoint_page(request, session, endpoint_id, None, outcome=outcome)

    @post(
        "/{endpoint_id:uuid}/deliveries/{delivery_id:int}/retry",
        guards=[can("webhooks:write")],
    )
    async def retry(
        self, request: Request, session: AsyncSession, endpoint_id: uuid.UUID, delivery_id: int
    ) -> Response[Any]:
        await webhooks.retry_delivery(session, _me(request), delivery_id)
        return see_other(request, f"/console/webhooks/{endpoint_id}")


async def _license_page(
    request: Request,
    session: AsyncSession,
    license_id: uuid.UUID,
    *,
    failed: DomainError | None = None,
) -> Template:
    """A license's page; ``failed``: a refused change, shown in the page's message area with
    the status the API gives it."""
    me = _me(request)
    found = await licenses.get_license(session, me, license_id)
    activations = await licenses.list_activations(session, me, license_id, limit=PAGE, cursor=None)
    trail = await audit.list_events(session, me, target_id=str(license_id), limit=PAGE, cursor=None)
    organization = await organizations.get_organization(session, me, found.organization_id)
    writer = me.has_scope("licenses:write")
    tiers = (
        (await products.list_tiers(session, found.product, limit=200, cursor=None)).items
        if writer
        else []
    )
    named = await license_users.list_users(session, me, license_id)
    members: list[Any] = []
    more_members = False
    if writer and named.seat_kind == "user":
        people = await users.list_users(
            session, me, organization_id=found.organization_id, limit=MEMBER_LIMIT, cursor=None
        )
        assigned = {u.user_id for u in named.users}
        members = [m for m in people.items if m.id not in assigned]
        more_members = people.next_cursor is not None
    problem = problem_for(failed) if failed is not None else None
    return _page(
        request,
        "license.html",
        status_code=problem.status_code if problem is not None else 200,
        license=found,
        organization=organization,
        activations=activations.items,
        trail=trail.items,
        tiers=tiers,
        usage=await metering.license_usage(session, me, license_id),
        license_users=named,
        members=members,
        more_members=more_members,
        refusal=refusal(problem) if problem is not None else None,
    )


async def _named_user_change(
    request: Request,
    session: AsyncSession,
    license_id: uuid.UUID,
    change: Callable[[], Awaitable[None]],
) -> Template | Response[Any]:
    """Assign or unassign through the license-users service (the API's). A refusal
    (``USER_LIMIT``, ``USER_NOT_FOUND``, ...) rolls the change back to a savepoint and shows
    the license's page again with the refusal in its message area."""
    try:
        async with session.begin_nested():
            await change()
    except DomainError as failed:
        return await _license_page(request, session, license_id, failed=failed)
    return see_other(request, f"/console/licenses/{license_id}")


@dataclass(frozen=True)
class OrganizationChoice:
    id: str
    label: str
    """The organization's name; with the start of its id when another listed has the same."""


@dataclass(frozen=True)
class OrganizationPicker:
    """A console form's organization ``<select>`` (``console/_organization_picker.html``):
    organizations by name, their id as the value (the service still checks it)."""

    choices: list[OrganizationChoice]
    selected: str
    more: bool
    """More organizations match than the picker lists: a name search (``org_q``) narrows it."""
    search: str


async def _organization_picker(
    session: AsyncSession, request: Request, selected: uuid.UUID | None, search: str | None
) -> OrganizationPicker:
    """Organizations for a picker, from the organizations service: the first
    ``PICKER_LIMIT`` (whose name contains ``search``, when given) and the one selected."""
    me = _me(request)
    search = (search or "").strip()
    found = await organizations.list_organizations(
        session, me, limit=PICKER_LIMIT, cursor=None, search=search or None
    )
    listed = {o.id: o.name for o in found.items}
    if selected is not None and selected not in listed:
        try:
            listed[selected] = (await organizations.get_organization(session, me, selected)).name
        except NotFound:
            listed[selected] = "(no such organization)"
    names = Counter(name.casefold() for name in listed.values())
    choices = [
        OrganizationChoice(
            str(id_), f"{name} ({str(id_)[:8]})" if names[name.casefold()] > 1 else name
        )
        for id_, name in sorted(listed.items(), key=lambda item: (item[1].casefold(), str(item[0])))
    ]
    return OrganizationPicker(
        choices, str(selected) if selected else "", found.next_cursor is not None, search
    )


async def _endpoint_page(
    request: Request,
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    cursor: str | None,
    **extra: Any,
) -> Template:
    endpoint = await webhooks.get_endpoint(session, endpoint_id)
    deliveries = await webhooks.list_deliveries(
        session, endpoint_id, limit=PAGE, cursor=cursor, newest_first=True
    )
    return _page(
        request,
        "webhook.html",
        endpoint=endpoint,
        organization_names=await organizations.names(
            session, _me(request), [endpoint.organization_id]
        ),
        deliveries=deliveries.items,
        event_types=EVENT_TYPES,
        event_prefixes=EVENT_PREFIXES,
        next_page=next_page(request, deliveries.next_cursor),
        **extra,
    )


async def _set_enabled(
    request: Request, session: AsyncSession, endpoint_id: uuid.UUID, enabled: bool
) -> Response[Any]:
    await webhooks.update_endpoint(
        session,
        _me(request),
        webhooks.UrlPolicy.from_settings(request.app.state.settings),
        endpoint_id,
        EndpointUpdate(enabled=enabled),
    )
    return see_other(request, f"/console/webhooks/{endpoint_id}")


def _many(form: Mapping[str, Any], name: str) -> list[str]:
    """Every value of a repeated field (ticked checkboxes)."""
    value = form.get(name)
    values = value if isinstance(value, list) else [value] if value else []
    return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _tier_fields(form: Mapping[str, Any]) -> dict[str, Any]:
    """A tier form's fields: the form holds the whole tier, so an unticked box is ``false``
    and an empty duration is perpetual (``null``)."""
    fields: dict[str, Any] = {name: form_text(form, name) for name in TIER_FIELDS}
    fields["duration_days"] = fields["duration_days"] or None
    for flag in TIER_FLAGS:
        fields[flag] = bool(form_text(form, flag))
    return fields


async def _forget_key(keyring: Any) -> None:
    keyring.invalidate()


async def _catalog(session: AsyncSession) -> list[tuple[Any, list[Any]]]:
    """Every product with its tiers, for the forms and the products page."""
    found = await products.list_products(session, limit=200, cursor=None)
    return [
        (product, (await products.list_tiers(session, product.code, limit=200, cursor=None)).items)
        for product in found.items
    ]


def console_router(csrf_secret: str) -> Router:
    """``/console``: its session cookie, its CSRF check, HTML errors."""
    return Router(
        path="/console",
        route_handlers=[ConsoleAuthController, ConsoleController, ConsoleWebhookController],
        middleware=web_middleware("console", principal_for, csrf_secret),
        exception_handlers=error_handlers("console"),
        include_in_schema=False,
    )

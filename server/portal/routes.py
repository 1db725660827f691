"""``/portal``: customers. The same accounts as ``/api/v1/auth`` (owner, admin, member), the
same services and the same guards as the API; every query is the signed-in person's
organization, so another organization's ids answer 404."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import service as auth
from server.auth.principal import EVERY_ROLE, MANAGERS, Principal, allow, principal_of
from server.errors import InvalidInput, RateLimited, Unauthenticated
from server.license_admin import service as licenses
from server.license_users import service as license_users
from server.license_users.schemas import LicenseUserAssign
from server.metering import service as metering
from server.organizations import service as organizations
from server.product_licensing import service as licensing
from server.projects import service as projects
from server.users import service as users
from server.users.schemas import UserCreate, UserUpdate
from server.web import (
    SessionFacts,
    cleared_cookie,
    end_session,
    error_handlers,
    form_struct,
    form_text,
    open_session,
    page,
    see_other,
    session_cookie,
    session_token,
    web_middleware,
)

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
PAGE = 100
MAX_REQUEST_FILE = 16 * 1024


def principal_for(facts: SessionFacts) -> Principal | None:
    """A portal session acts as its user, exactly as their access token would."""
    if facts.organization_id is None or facts.role not in EVERY_ROLE:
        return None
    return Principal(
        kind="user",
        id=facts.subject_id,
        organization_id=facts.organization_id,
        role=facts.role,
        token_generation=facts.token_generation,
    )


_everyone = allow(roles=EVERY_ROLE)
_managers_seats = allow(scope="licenses:write", roles=MANAGERS)  # as the API's deactivate
_managers_people = allow(scope="users:write", roles=MANAGERS)  # as the API's user changes


def _page(request: Request, name: str, **context: Any) -> Template:
    me = principal_of(request)
    return page(
        f"portal/{name}",
        {"me": me, "manager": me.role in MANAGERS, "area": "portal", **context},
    )


async def _signed_in(session: AsyncSession, user: Any) -> str:
    return await open_session(
        session,
        SessionFacts("portal", user.id, user.organization_id, user.role, user.token_generation),
    )


class PortalAuthController(Controller):
    path = "/"

    @get("/login")
    async def login_form(self) -> Template:
        return page("portal/login.html", {"area": "portal"})

    @post("/login")
    async def login(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Template | Response[Any]:
        state = request.app.state
        try:
            user = await auth.authenticate(
                session,
                state.side_engine,
                state.settings,
                email=form_text(data, "email"),
                password=data.get("password", ""),
            )
        except (Unauthenticated, RateLimited) as exc:
            return page(
                "portal/login.html",
                {"area": "portal", "error": exc.detail, "email": form_text(data, "email")},
                status_code=429 if isinstance(exc, RateLimited) else 401,
            )
        token = await _signed_in(session, user)
        return see_other(request, "/portal", [session_cookie("portal", token)])

    @get("/signup")
    async def signup_form(self) -> Template:
        return page("portal/signup.html", {"area": "portal"})

    @post("/signup")
    async def signup(self, request: Request, session: AsyncSession, data: Form) -> Response[Any]:
        state = request.app.state
        user, _ = await auth.register(
            session,
            state.side_engine,
            state.settings,
            email=form_text(data, "email"),
            password=data.get("password", ""),
            full_name=form_text(data, "full_name"),
            organization_name=form_text(data, "organization_name"),
        )
        token = await _signed_in(session, user)
        return see_other(request, "/portal", [session_cookie("portal", token)])

    @post("/logout")
    async def logout(self, request: Request, session: AsyncSession) -> Response[Any]:
        token = session_token(request, "portal")
        if token:
            await end_session(session, "portal", token)
        return see_other(request, "/portal/login", [cleared_cookie("portal")])


class PortalController(Controller):
    path = "/"
    guards = [_everyone]

    @get("/")
    async def licenses(self, request: Request, session: AsyncSession) -> Template:
        me = principal_of(request)
        assert me.organization_id is not None
        organization = await organizations.get_organization(session, me, me.organization_id)
        found = await licenses.list_licenses(session, me, limit=PAGE)
        return _page(request, "licenses.html", organization=organization, licenses=found.items)

    @get("/licenses/{license_id:uuid}")
    async def license(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID
    ) -> Template:
        me = principal_of(request)
        found = await licenses.get_license(session, me, license_id)
        machines = await licenses.list_activations(session, me, license_id, limit=PAGE, cursor=None)
        usage = await metering.license_usage(session, me, license_id)
        named = await _license_users(session, me, license_id)
        return _page(
            request, "license.html", license=found, machines=machines.items, usage=usage, **named
        )

    @post(
        "/licenses/{license_id:uuid}/machines/{activation_id:uuid}/free",
        guards=[_managers_seats],
    )
    async def free_machine(
        self,
        request: Request,
        session: AsyncSession,
        license_id: uuid.UUID,
        activation_id: uuid.UUID,
    ) -> Response[Any]:
        await licenses.deactivate(session, principal_of(request), license_id, activation_id)
        return see_other(request, f"/portal/licenses/{license_id}")

    # --- named-user seats (the license page's "_license_users.html") --------------------------

    @post("/licenses/{license_id:uuid}/users", guards=[_managers_seats])
    async def assign_user(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        wanted = form_struct({"user_id": form_text(data, "user_id")}, LicenseUserAssign)
        await license_users.assign_user(session, principal_of(request), license_id, wanted.user_id)
        return see_other(request, f"/portal/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/users/{user_id:uuid}/remove", guards=[_managers_seats])
    async def unassign_user(
        self, request: Request, session: AsyncSession, license_id: uuid.UUID, user_id: uuid.UUID
    ) -> Response[Any]:
        await license_users.unassign_user(session, principal_of(request), license_id, user_id)
        return see_other(request, f"/portal/licenses/{license_id}")

    @post("/licenses/{license_id:uuid}/offline")
    async def offline_activation(
        self,
        request: Request,
        session: AsyncSession,
        license_id: uuid.UUID,
        data: Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)],
    ) -> Response[bytes]:
        """An air-gapped machine's request file in, its signed answer file out."""
        me = principal_of(request)
        await licenses.get_license(session, me, license_id)  # 404 unless it is ours
        upload = data.get("request_file")
        body = await upload.read(MAX_REQUEST_FILE + 1) if isinstance(upload, UploadFile) else b""
        if not body or len(body) > MAX_REQUEST_FILE:
            raise InvalidInput("Choose the request file the product wrote", code="NO_FILE")
        wanted = licensing.read_activation_request_file(body)
        if await licenses.license_id_for_key(session, me, wanted.license_key) != license_id:
            raise InvalidInput(
                "This request file is for another license", code="REQUEST_FOR_ANOTHER_LICENSE"
            )
        state = request.app.state
        caller = licensing.Caller(
            settings=state.settings, keyring=state.keyring, engine=state.side_engine
        )
        activated = await licensing.activate(state.hot_pool, caller, wanted, user=me)
        answer = licensing.activation_response_file(activated.response)
        return Response(
            content=msgspec.json.format(msgspec.json.encode(answer), indent=2) + b"\n",
            media_type="application/json",
            status_code=200,
            headers={"Content-Disposition": 'attachment; filename="activation-response.json"'},
        )

    @get("/account")
    async def account(self, request: Request) -> Template:
        return _page(request, "account.html")

    @post("/account/password")
    async def change_password(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        me = principal_of(request)
        change = form_struct(
            {
                "password": data.get("new_password", ""),
                "current_password": data.get("current_password", ""),
            },
            UserUpdate,
        )
        await users.update_user(session, me, me.id, change)
        # The API's rule: a new password ends every session, this one too.
        return see_other(request, "/portal/login", [cleared_cookie("portal")])

    # --- projects ----------------------------------------------------------------------------

    @get("/projects")
    async def projects(self, request: Request, session: AsyncSession) -> Template:
        found = await projects.list_projects(
            session, principal_of(request), limit=PAGE, cursor=None
        )
        return _page(request, "projects.html", projects=found.items)

    @post("/projects")
    async def create_project(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        await projects.create_project(
            session,
            principal_of(request),
            name=form_text(data, "name"),
            description=form_text(data, "description"),
        )
        return see_other(request, "/portal/projects")

    @post("/projects/{project_id:uuid}")
    async def rename_project(
        self, request: Request, session: AsyncSession, project_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        await projects.update_project(
            session,
            principal_of(request),
            project_id,
            name=form_text(data, "name"),
            description=data.get("description"),
        )
        return see_other(request, "/portal/projects")

    @post("/projects/{project_id:uuid}/delete")
    async def delete_project(
        self, request: Request, session: AsyncSession, project_id: uuid.UUID
    ) -> Response[Any]:
        await projects.delete_project(session, principal_of(request), project_id)
        return see_other(request, "/portal/projects")

    # --- members -----------------------------------------------------------------------------

    @get("/members")
    async def members(self, request: Request, session: AsyncSession) -> Template:
        me = principal_of(request)
        found = await users.list_users(session, me, organization_id=None, limit=PAGE, cursor=None)
        return _page(
            request, "members.html", members=found.items, roles=("member", "admin", "owner")
        )

    @post("/members", guards=[_managers_people])
    async def add_member(
        self, request: Request, session: AsyncSession, data: Form
    ) -> Response[Any]:
        fields = {name: data.get(name, "") for name in ("email", "full_name", "password", "role")}
        await users.create_user(session, principal_of(request), form_struct(fields, UserCreate))
        return see_other(request, "/portal/members")

    @post("/members/{user_id:uuid}/role", guards=[_managers_people])
    async def change_role(
        self, request: Request, session: AsyncSession, user_id: uuid.UUID, data: Form
    ) -> Response[Any]:
        change = form_struct({"role": form_text(data, "role")}, UserUpdate)
        await users.update_user(session, principal_of(request), user_id, change)
        return see_other(request, "/portal/members")

    @post("/members/{user_id:uuid}/remove", guards=[_managers_people])
    async def remove_member(
        self, request: Request, session: AsyncSession, user_id: uuid.UUID
    ) -> Response[Any]:
        await users.delete_user(session, principal_of(request), user_id)
        return see_other(request, "/portal/members")


async def _license_users(
    session: AsyncSession, me: Principal, license_id: uuid.UUID
) -> dict[str, Any]:
    """What ``portal/_license_users.html`` shows: the license's named users and, for a
    manager, the members they can assign."""
    named = await license_users.list_users(session, me, license_id)
    members: list[Any] = []
    if named.seat_kind == "user" and me.role in MANAGERS:
        found = await users.list_users(session, me, organization_id=None, limit=PAGE, cursor=None)
        members = found.items
    return {"license_users": named, "members": members}


def portal_router(csrf_secret: str) -> Router:
    """``/portal``: its session cookie, its CSRF check, HTML errors."""
    return Router(
        path="/portal",
        route_handlers=[PortalAuthController, PortalController],
        middleware=web_middleware("portal", principal_for, csrf_secret),
        exception_handlers=error_handlers("portal"),
        include_in_schema=False,
    )

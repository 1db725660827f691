from __future__ import annotations

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import service
from server.auth.principal import EVERY_ROLE, Principal, allow, provide_principal
from server.auth.schemas import (
    LoginRequest,
    MeResponse,
    RefreshRequest,
    SignupRequest,
    SignupResponse,
    TokenPair,
)
from server.organizations.schemas import organization_read
from server.problems import problem_responses
from server.users.schemas import user_read


def _context(state: State) -> service.TokenContext:
    return service.TokenContext(settings=state.settings, secret=state.access_token_secret)


def _pair(tokens: service.Tokens) -> TokenPair:
    return TokenPair(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.expires_in,
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/signup",
        responses=problem_responses(400, 422, 429),
        summary="Sign up: create an organization with you as its owner",
        description="E-mail addresses are normalised (trimmed, lowercased) and unique "
        "within an organization; the new organization's owner never collides, so whether "
        "the address has an account elsewhere is never told. Passwords need at least 12 "
        "characters. Answers with an access token and a refresh token, as a login does.",
    )
    async def signup(
        self, session: AsyncSession, state: State, data: SignupRequest
    ) -> SignupResponse:
        done = await service.signup(
            session,
            state.side_engine,
            _context(state),
            email=data.email,
            password=data.password,
            full_name=data.full_name,
            organization_name=data.organization_name,
        )
        return SignupResponse(
            user=user_read(done.user),
            organization=organization_read(done.organization),
            access_token=done.tokens.access_token,
            refresh_token=done.tokens.refresh_token,
            expires_in=done.tokens.expires_in,
        )

    @post(
        "/login",
        responses=problem_responses(400, 401, 422, 429),
        status_code=200,
        summary="Log in with e-mail and password",
        description="401 INVALID_CREDENTIALS whether the e-mail is unknown or the password "
        "wrong. Repeated failures from one client address (for one e-mail, or for any) "
        "answer 429 RATE_LIMITED with a Retry-After that grows with each further failure. "
        "An address with accounts in several organizations logs in to the oldest unless "
        "organization_id names one.",
    )
    async def login(self, session: AsyncSession, state: State, data: LoginRequest) -> TokenPair:
        tokens = await service.login(
            session,
            state.side_engine,
            _context(state),
            email=data.email,
            password=data.password,
            organization_id=data.organization_id,
        )
        return _pair(tokens)

    @post(
        "/refresh",
        responses=problem_responses(400, 401, 422),
        status_code=200,
        summary="Exchange a refresh token for a new pair",
        description="The presented refresh token stops working. Presenting one that was "
        "already used revokes every token of its session (401 REFRESH_TOKEN_REUSED).",
    )
    async def refresh(self, session: AsyncSession, state: State, data: RefreshRequest) -> TokenPair:
        tokens = await service.refresh(
            session, state.side_engine, _context(state), data.refresh_token
        )
        return _pair(tokens)

    @post(
        "/logout",
        status_code=204,
        summary="Log out: revoke the refresh token's session",
        description="Ends the refresh token's session (its token family); access tokens "
        "already issued in it run until they expire. POST /auth/logout-all ends them too.",
        responses=problem_responses(400, 422),
    )
    async def logout(self, session: AsyncSession, data: RefreshRequest) -> None:
        await service.logout(session, data.refresh_token)

    @post(
        "/logout-all",
        status_code=204,
        summary="Log out everywhere: end every session of your account",
        description="Revokes every refresh token of the account and ends every access "
        "token issued so far, this one included (they answer 401 TOKEN_REVOKED). Changing "
        "your password does the same.",
        responses=problem_responses(401, 403),
        guards=[allow(roles=EVERY_ROLE)],
        security=[{"bearer": []}],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
    )
    async def logout_all(self, session: AsyncSession, principal: Principal) -> None:
        await service.logout_everywhere(session, principal)

    @get(
        "/me",
        responses=problem_responses(401, 403),
        summary="The logged-in user and their organization",
        guards=[allow(roles=EVERY_ROLE)],
        security=[{"bearer": []}],
        dependencies={"principal": Provide(provide_principal, sync_to_thread=False)},
    )
    async def me(self, session: AsyncSession, principal: Principal) -> MeResponse:
        user, organization = await service.me(session, principal)
        return MeResponse(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            organization_id=user.organization_id,
            organization=organization_read(organization),
        )

"""Who is calling: admin API keys and user access tokens, resolved once per request.

The authentication middleware only reads credentials; guards decide what a route allows;
the session provider turns the principal into the transaction's tenant (RLS).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import PermissionDenied, Unauthenticated

API_KEY_PREFIX = "lic_admin_"
ACCESS_TOKEN_TYP = "at+jwt"
ACCESS_TOKEN_AUDIENCE = "licentia-api"
ALL_SCOPES = frozenset(
    {
        "organizations:read",
        "organizations:write",
        "products:read",
        "products:write",
        "licenses:read",
        "licenses:write",
        "keys:write",
        "audit:read",
        "api-keys:write",
        "users:write",
        "webhooks:read",
        "webhooks:write",
        "*",
    }
)
Role = Literal["owner", "admin", "member"]
MANAGERS: frozenset[str] = frozenset({"owner", "admin"})
EVERY_ROLE: frozenset[str] = frozenset({"owner", "admin", "member"})

_MEMBER_SCOPES = frozenset(
    {
        "organizations:read",  # their organization and its people
        "organizations:write",  # projects: no scope of their own, organization content
        "licenses:read",  # licenses and their activations
    }
)
_ADMIN_SCOPES = _MEMBER_SCOPES | {
    "users:write",  # add, change and remove members and admins
    "licenses:write",  # free a seat (deactivate a machine)
}
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "member": _MEMBER_SCOPES,
    "admin": _ADMIN_SCOPES,
    "owner": _ADMIN_SCOPES | {"audit:read"},  # and owners: users:write covers them
}
"""What a person of each role can do, in admin API-key scopes: the one table that decides
who may manage whom. Where no scope matches a power exactly it maps to a broader one (the
safe direction). Whoever gives someone a role (creates them with a password, promotes them)
or changes or removes someone must hold every scope of that role: an API key holds them
literally (or ``*``), a user through their own role. So a key can never log in, through a
person it made, to anything it was refused directly."""

StaffRole = Literal["admin", "support", "viewer"]
STAFF_SUPPORT_SCOPE = "licenses:support"
"""Held by staff only (no API key is given it): suspend, reinstate and free a seat, the part
of ``licenses:write`` that support staff do; ``licenses:write`` itself covers it."""
_STAFF_READ = frozenset({"organizations:read", "products:read", "licenses:read", "audit:read"})
STAFF_ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": _STAFF_READ,
    "support": _STAFF_READ | {STAFF_SUPPORT_SCOPE},
    "admin": frozenset({"*"}),
}
"""What the vendor's staff may do in the console, in the API's scopes: viewers read, support
also suspends, reinstates and frees seats, admins do everything an all-scopes API key does."""


@dataclass(frozen=True)
class Principal:
    kind: Literal["api_key", "user", "staff"]
    id: uuid.UUID
    scopes: frozenset[str] = field(default_factory=frozenset)
    organization_id: uuid.UUID | None = None
    role: str | None = None
    token_generation: int = 0
    """Users: the account's token generation the access token was issued under."""

    @property
    def is_admin(self) -> bool:
        """API keys and staff act for the vendor, across every organization."""
        return self.kind != "user"

    def has_scope(self, scope: str) -> bool:
        if not self.is_admin:
            return False
        if "*" in self.scopes or scope in self.scopes:
            return True
        return scope == STAFF_SUPPORT_SCOPE and "licenses:write" in self.scopes

    def scopes_lacking(self, scopes: Iterable[str]) -> list[str]:
        """The scopes of ``scopes`` this API key does not hold (``*`` holds every one;
        only ``*`` holds ``*``)."""
        if "*" in self.scopes:
            return []
        return sorted(set(scopes) - self.scopes)

    @property
    def actor(self) -> tuple[str, str]:
        return self.kind, str(self.id)

    async def confirm(self, session: AsyncSession) -> None:
        """Run by the request transaction once the tenant is set: a user's token stands
        only while the user does, a staff member's session while the account does with the
        same role and generation (API keys were checked when they authenticated)."""
        if self.kind == "user":
            await confirm_user(session, self)
        elif self.kind == "staff":
            await confirm_staff(session, self)


def hash_secret(value: str) -> bytes:
    """SHA-256 for high-entropy secrets (API keys, license keys, refresh tokens)."""
    return hashlib.sha256(value.encode()).digest()


def new_api_key() -> tuple[str, str, bytes]:
    """A new admin API key: (key shown once, display prefix, stored hash)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    return key, key[: len(API_KEY_PREFIX) + 6], hash_secret(key)


# --- access tokens (HS256 under a key derived from the key-encryption key) -----------------


def access_token_secret(key_encryption_key: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"licentia access tokens v1"
    ).derive(key_encryption_key)


def issue_access_token(
    secret: bytes,
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    role: str,
    ttl: int,
    issuer: str,
    token_generation: int = 0,
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    claims = {
        "iss": issuer,
        "aud": ACCESS_TOKEN_AUDIENCE,
        "sub": str(user_id),
        "org": str(organization_id),
        "role": role,
        "gen": token_generation,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": ACCESS_TOKEN_TYP})


def decode_access_token(secret: bytes, token: str, *, issuer: str) -> Principal:
    try:
        if jwt.get_unverified_header(token).get("typ") != ACCESS_TOKEN_TYP:
            raise Unauthenticated("Invalid access token", code="INVALID_TOKEN")
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=ACCESS_TOKEN_AUDIENCE,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "org", "role", "gen"]},
        )
        if type(claims["gen"]) is not int:
            raise ValueError("gen")
        return Principal(
            kind="user",
            id=uuid.UUID(claims["sub"]),
            organization_id=uuid.UUID(claims["org"]),
            role=str(claims["role"]),
            token_generation=claims["gen"],
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("The access token has expired", code="TOKEN_EXPIRED") from None
    except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
        raise Unauthenticated("Invalid access token", code="INVALID_TOKEN") from None


def bearer_credential(header: str) -> str:
    """The credential of an ``Authorization: Bearer <credential>`` header."""
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("Use 'Authorization: Bearer <token>'", code="INVALID_CREDENTIALS")
    return credential


# --- middleware ----------------------------------------------------------------------------

# A read, plus a write at most once a minute per key: recording every use would turn each
# admin request into a row update, and serialise concurrent requests made with one key.
_API_KEY_LOOKUP = text(
    """
    WITH key AS (
        SELECT id, scopes, last_used_at FROM api_keys
        WHERE key_hash = :hash AND revoked_at IS NULL
    ), touched AS (
        UPDATE api_keys SET last_used_at = now()
        FROM key
        WHERE api_keys.id = key.id
          AND (key.last_used_at IS NULL OR key.last_used_at < now() - interval '1 minute')
    )
    SELECT id, scopes FROM key
    """
)


class AuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Resolve ``Authorization: Bearer`` when present; routes decide whether it is required."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization")
        if not header:
            return AuthenticationResult(user=None, auth=None)
        credential = bearer_credential(header)
        state = connection.app.state
        if credential.startswith(API_KEY_PREFIX):
            principal = await _authenticate_api_key(state, credential)
        else:
            principal = decode_access_token(
                state.access_token_secret, credential, issuer=state.settings.issuer
            )
        return AuthenticationResult(user=principal, auth=credential)


async def _authenticate_api_key(state: Any, key: str) -> Principal:
    async with state.engine.begin() as connection:
        row = (await connection.execute(_API_KEY_LOOKUP, {"hash": hash_secret(key)})).first()
    if row is None:
        raise Unauthenticated("Unknown or revoked API key", code="INVALID_API_KEY")
    return Principal(kind="api_key", id=row.id, scopes=frozenset(row.scopes))


_CURRENT_USER = text(
    "SELECT role, token_generation FROM users WHERE id = :id AND organization_id = :org"
)


async def confirm_user(session: AsyncSession, principal: Principal) -> None:
    """A user's access token stands only while the user exists, under the token generation
    it was issued with, with the role it names. One indexed read, on every user request.

    Removing someone (401 INVALID_TOKEN), or changing their password or logging them out
    everywhere, which bump the generation (401 TOKEN_REVOKED: log in again), ends their
    tokens on the next request, not when they expire; demoting someone makes their token
    stale (401 TOKEN_STALE: refresh for one with the current role). The query names the
    token's organization itself; it also runs after the tenant is set, so RLS is the
    backstop (idiom 7: tenancy is explicit twice)."""
    row = (
        await session.execute(_CURRENT_USER, {"id": principal.id, "org": principal.organization_id})
    ).first()
    if row is None:
        raise Unauthenticated("This account no longer exists", code="INVALID_TOKEN")
    if row.token_generation != principal.token_generation:
        raise Unauthenticated(
            "This session has ended (password changed or logged out everywhere); log in again",
            code="TOKEN_REVOKED",
        )
    if row.role != principal.role:
        raise Unauthenticated("Your role has changed; refresh the access token", code="TOKEN_STALE")


_CURRENT_STAFF = text("SELECT role, token_generation FROM staff_accounts WHERE id = :id")


async def confirm_staff(session: AsyncSession, principal: Principal) -> None:
    """A staff session stands while the account exists with the role and generation it was
    opened under (a password change or a new role ends it)."""
    row = (await session.execute(_CURRENT_STAFF, {"id": principal.id})).first()
    if row is None:
        raise Unauthenticated("This account no longer exists", code="INVALID_TOKEN")
    if row.token_generation != principal.token_generation or row.role != principal.role:
        raise Unauthenticated("This session has ended; sign in again", code="TOKEN_REVOKED")


def staff_principal(staff_id: uuid.UUID, role: str, token_generation: int) -> Principal:
    """The principal a console session acts as: its role's scopes, across organizations."""
    return Principal(
        kind="staff",
        id=staff_id,
        scopes=STAFF_ROLE_SCOPES[role],
        role=role,
        token_generation=token_generation,
    )


# --- guards --------------------------------------------------------------------------------

Guard = Callable[[ASGIConnection, BaseRouteHandler], None]


def principal_of(connection: ASGIConnection) -> Principal:
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise Unauthenticated("Authentication required", code="UNAUTHENTICATED")
    return user


def allow(*, scope: str | None = None, roles: Iterable[str] = ()) -> Guard:
    """Admit an API key holding ``scope`` and/or a user whose role is in ``roles``."""
    allowed_roles = frozenset(roles)

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = principal_of(connection)
        if principal.is_admin:
            if scope is not None and principal.has_scope(scope):
                return
            raise PermissionDenied(
                f"This API key lacks the {scope!r} scope" if scope else "Users only",
                code="MISSING_SCOPE" if scope else "FORBIDDEN",
            )
        if principal.role in allowed_roles:
            return
        raise PermissionDenied("Your role does not allow this", code="INSUFFICIENT_ROLE")

    return guard


def provide_principal(request: Request) -> Principal:
    """Dependency: the authenticated caller (guards have already admitted it)."""
    return principal_of(request)

"""Sign-up, login, refresh-token rotation with reuse detection, logout, logout everywhere.

Passwords are hashed with argon2id; refresh tokens are opaque random values stored as a
SHA-256 hash, rotated on every use, and grouped in families so that presenting a token that
was already used (a stolen copy, or the legitimate one after the thief used it) revokes the
whole family. Refresh tokens are a tenant table: a token is found through
``licentia_refresh_token_org`` (its hash -> the organization), then read under that tenant.

Access tokens carry the user's ``token_generation``; ``end_every_session`` bumps it and
revokes every refresh token of the user (logout everywhere, password change), so every
token issued before stops working at once. Whatever issues or ends tokens for a user locks
the user's row first, so a refresh or login racing with the end of every session either
finishes before it (and its tokens are ended too) or sees it (and issues nothing old).

E-mail addresses are unique per organization: adding a user or signing up never consults
another organization, so neither tells whether an address has an account elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server import ratelimit
from server.audit.service import record
from server.auth import login_limit
from server.auth.principal import Principal, hash_secret, issue_access_token
from server.db.session import set_tenant
from server.errors import Conflict, InvalidInput, RateLimited, Unauthenticated
from server.models import Organization, RefreshToken, StaffAccount, User
from server.observability import current_client_ip
from server.passwords import check_password_policy
from server.settings import Settings

# No whitespace, no NUL or other control character (PostgreSQL cannot store NUL).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")
_USER_ORG = text("SELECT licentia_user_org(:email, CAST(:org AS uuid))")
_REFRESH_TOKEN_ORG = text("SELECT licentia_refresh_token_org(:hash)")

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile


# --- small shared rules -------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """Strip and lowercase; raise ``InvalidInput`` when it is not an e-mail address."""
    email = raw.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidInput("email: not a valid e-mail address", code="INVALID_EMAIL")
    return email


def clean_text(value: str, field: str) -> str:
    """Strip surrounding whitespace; a value that is only whitespace is refused."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput(f"{field}: must not be blank", code="VALIDATION_ERROR")
    return cleaned


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def work() -> bool:
        try:
            return _hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(work)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so both failures cost the same.

    Built once per process by ``prepare()`` at application start-up, so the first login
    for an unknown e-mail costs one argon2 verification like every other."""
    return _hasher.hash(secrets.token_urlsafe(24))


def prepare() -> None:
    """Start-up work of this module (one argon2 hash): run by the app's lifespan."""
    _dummy_hash()


async def email_taken(session: AsyncSession, organization_id: uuid.UUID, email: str) -> bool:
    """Whether ``organization_id`` has a user with this address (no other one is asked)."""
    found = await session.scalar(
        select(User.id).where(User.organization_id == organization_id, User.email == email)
    )
    return found is not None


def email_conflict() -> Conflict:
    return Conflict(
        "A user with this e-mail address already exists in this organization",
        code="EMAIL_TAKEN",
    )


async def insert_user(session: AsyncSession, user: User) -> User:
    """Add ``user``; an e-mail taken in its organization meanwhile (the unique index
    decides) is 409 EMAIL_TAKEN."""
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        if "users_organization_email_key" in str(exc.orig):
            raise email_conflict() from None
        raise
    await session.refresh(user)
    return user


# --- tokens -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenContext:
    """What token issuing needs from the application state."""

    settings: Settings
    secret: bytes


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


async def _issue_tokens(
    session: AsyncSession, ctx: TokenContext, user: User, family_id: uuid.UUID | None = None
) -> Tokens:
    now = datetime.now(UTC)
    access = issue_access_token(
        ctx.secret,
        user_id=user.id,
        organization_id=user.organization_id,
        role=user.role,
        ttl=ctx.settings.access_token_ttl_seconds,
        issuer=ctx.settings.issuer,
        token_generation=user.token_generation,
        now=now,
    )
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            organization_id=user.organization_id,
            token_hash=hash_secret(refresh),
            family_id=family_id or uuid.uuid4(),
            expires_at=now + timedelta(seconds=ctx.settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return Tokens(access, refresh, ctx.settings.access_token_ttl_seconds)


# --- sign-up ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedUp:
    user: User
    organization: Organization
    tokens: Tokens


async def signup(
    session: AsyncSession,
    engine: AsyncEngine,
    ctx: TokenContext,
    *,
    email: str,
    password: str,
    full_name: str,
    organization_name: str,
) -> SignedUp:
    """``register``, then log the new owner in with a new access and refresh token."""
    user, organization = await register(
        session,
        engine,
        ctx.settings,
        email=email,
        password=password,
        full_name=full_name,
        organization_name=organization_name,
    )
    return SignedUp(user, organization, await _issue_tokens(session, ctx, user))


async def register(
    session: AsyncSession,
    engine: AsyncEngine,
    settings: Settings,
    *,
    email: str,
    password: str,
    full_name: str,
    organization_name: str,
) -> tuple[User, Organization]:
    """Create an organization with this person as its owner (the API's sign-up and the
    portal's both call it); the tenant stays set to the new organization.

    The organization is new, so the address is never taken in it: whether it has an
    account elsewhere is neither checked nor told. At most ``signups_per_hour`` per client
    address, counted before anything else (on its own transaction, before the request's
    session holds a connection)."""
    client_ip = current_client_ip()
    limit = settings.signups_per_hour
    if client_ip and limit > 0:
        wait = await ratelimit.hit(engine, ratelimit.bucket("signup:ip", client_ip), limit, 3600)
        if wait:
            raise RateLimited(
                "Too many sign-ups from this address; try again later", retry_after=wait
            )
    email = normalize_email(email)
    check_password_policy(password)
    full_name = clean_text(full_name, "full_name")
    organization_name = clean_text(organization_name, "organization_name")
    password_hash = await hash_password(password)

    organization_id = uuid.uuid4()
    await set_tenant(session, organization_id)
    organization = Organization(id=organization_id, name=organization_name)
    session.add(organization)
    await session.flush()
    user = User(
        organization_id=organization_id,
        email=email,
        full_name=full_name,
        role="owner",
        password_hash=password_hash,
    )
    await insert_user(session, user)
    await session.refresh(organization)
    actor = ("user", str(user.id))
    await record(
        session,
        actor,
        "organization.create",
        "organization",
        organization_id,
        organization_id=organization_id,
        data={"name": organization_name, "via": "signup"},
    )
    await record(
        session,
        actor,
        "user.signup",
        "user",
        user.id,
        organization_id=organization_id,
        data={"email": email, "role": "owner"},
    )
    return user, organization


# --- login --------------------------------------------------------------------------------


async def check_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (no such account) the same argon2 work is
    done against a dummy hash and the answer is False, so both failures cost the same."""
    if password_hash is None:
        await verify_password(_dummy_hash(), password)
        return False
    return await verify_password(password_hash, password)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


async def login(
    session: AsyncSession,
    engine: AsyncEngine,
    ctx: TokenContext,
    *,
    email: str,
    password: str,
    organization_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Tokens:
    """``authenticate``, then a new access and refresh token."""
    user = await authenticate(
        session,
        engine,
        ctx.settings,
        email=email,
        password=password,
        organization_id=organization_id,
        now=now,
    )
    return await _issue_tokens(session, ctx, user)


async def authenticate(
    session: AsyncSession,
    engine: AsyncEngine,
    settings: Settings,
    *,
    email: str,
    password: str,
    organization_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> User:
    """Check the password, unless the login limit refuses the attempt first (429); the user,
    with the tenant set to their organization. The API's login and the portal's both call it.

    ``login_limit.admit`` counts the attempt per e-mail and client address, per address
    (both with back-off) and per e-mail from all addresses, atomically and *before* argon2
    runs, on its own short transaction (the count survives the request's rollback, and every
    worker and replica sees it); see ``server.auth.login_limit`` for the rules. A successful
    login gives its counts back in the request's transaction. ``now`` replaces the database
    clock for the limit (tests).

    The limiter runs before the request's session sends its first statement: the session
    has begun its transaction but holds no pooled connection yet, so the limiter's
    connection is never awaited while the request holds another one.

    The same ``Unauthenticated`` answers an unknown e-mail and a wrong password, after the
    same argon2 work. An address with accounts in several organizations logs in to the one
    ``organization_id`` names, else to the oldest (one argon2 verification either way). The
    account's row is locked while its password is checked, so a password change or a
    logout-everywhere running at the same time is never overtaken by this login.
    """
    email_key = email.strip().lower()
    admitted = await login_limit.admit(engine, settings, email_key, current_client_ip(), now)

    user: User | None = None
    found_org = await session.scalar(
        _USER_ORG, {"email": email_key, "org": str(organization_id) if organization_id else None}
    )
    if found_org is not None:
        await set_tenant(session, found_org)
        user = await session.scalar(
            select(User)
            .where(User.email == email_key, User.organization_id == found_org)
            .with_for_update()
        )
    ok = await check_password(user.password_hash if user else None, password)
    if not ok or user is None:
        raise Unauthenticated("Invalid e-mail or password", code="INVALID_CREDENTIALS")

    if needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    user.last_login_at = datetime.now(UTC)
    await session.flush()
    await record(
        session,
        ("user", str(user.id)),
        "auth.login",
        "user",
        user.id,
        organization_id=user.organization_id,
    )
    # Last, so the buckets stay locked by this transaction only until its commit.
    await login_limit.succeeded(await session.connection(), settings, admitted, now)
    return user


async def authenticate_staff(
    session: AsyncSession,
    engine: AsyncEngine,
    settings: Settings,
    *,
    email: str,
    password: str,
    now: datetime | None = None,
) -> StaffAccount:
    """A console sign-in: the staff account's password checked under the same login limit
    as ``authenticate`` (429 before any argon2 work when it refuses; its own e-mail buckets,
    ``staff:<email>``), the same answer and work for an unknown e-mail and a wrong password.
    The transaction becomes the platform's (staff act for the vendor)."""
    email_key = email.strip().lower()
    admitted = await login_limit.admit(
        engine, settings, f"staff:{email_key}", current_client_ip(), now
    )
    account = await session.scalar(
        select(StaffAccount).where(StaffAccount.email == email_key).with_for_update()
    )
    ok = await check_password(account.password_hash if account else None, password)
    if not ok or account is None:
        raise Unauthenticated("Invalid e-mail or password", code="INVALID_CREDENTIALS")
    await set_tenant(session, None, platform_admin=True)
    if needs_rehash(account.password_hash):
        account.password_hash = await hash_password(password)
    account.last_login_at = datetime.now(UTC)
    await session.flush()
    await record(session, ("staff", str(account.id)), "staff.login", "staff", account.id)
    await login_limit.succeeded(await session.connection(), settings, admitted, now)
    return account


# --- refresh and logout -------------------------------------------------------------------


def _invalid_refresh() -> Unauthenticated:
    return Unauthenticated("Invalid refresh token", code="INVALID_REFRESH_TOKEN")


async def _find_refresh_token(session: AsyncSession, refresh_token: str) -> RefreshToken | None:
    """The token with this value, read under its organization's tenant (which stays set)."""
    token_hash = hash_secret(refresh_token)
    organization_id = await session.scalar(_REFRESH_TOKEN_ORG, {"hash": token_hash})
    if organization_id is None:
        return None
    await set_tenant(session, organization_id)
    return await session.scalar(
        select(RefreshToken).where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.organization_id == organization_id,
        )
    )


async def _end_family(
    session: AsyncSession, token: RefreshToken, action: str, data: dict[str, str] | None = None
) -> None:
    """Revoke every refresh token of ``token``'s family and audit why."""
    await set_tenant(session, token.organization_id)
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.family_id == token.family_id,
            RefreshToken.organization_id == token.organization_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    await record(
        session,
        ("user", str(token.user_id)),
        action,
        "user",
        token.user_id,
        organization_id=token.organization_id,
        data=data,
    )


async def _revoke_family_now(engine: AsyncEngine, token: RefreshToken) -> None:
    """Revoke a family on its own transaction: it must hold although the request fails."""
    async with AsyncSession(engine) as side, side.begin():
        await _end_family(
            side, token, "auth.refresh_token_reuse", {"family_id": str(token.family_id)}
        )


async def refresh(
    session: AsyncSession, engine: AsyncEngine, ctx: TokenContext, refresh_token: str
) -> Tokens:
    """Rotate: the presented token is spent and a new pair is returned (same family).

    The user's row is locked (shared) before the token is claimed, as ``end_every_session``
    locks it before revoking: a refresh either completes before every session ends (and its
    new token is revoked too) or sees the end and refuses. The request holds no lock on the
    token until it claims it with one conditional UPDATE, so revoking a family on a side
    transaction (reuse detected) never waits on ourselves.
    """
    token = await _find_refresh_token(session, refresh_token)
    if token is None or token.revoked_at is not None:
        raise _invalid_refresh()
    if token.expires_at <= datetime.now(UTC):
        raise Unauthenticated("The refresh token has expired", code="REFRESH_TOKEN_EXPIRED")
    user = await session.scalar(
        select(User)
        .where(User.id == token.user_id, User.organization_id == token.organization_id)
        .with_for_update(read=True)
    )
    if user is None:
        raise _invalid_refresh()
    claimed = None
    if token.used_at is None:
        claimed = await session.scalar(
            update(RefreshToken)
            .where(
                RefreshToken.id == token.id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
            )
            .values(used_at=datetime.now(UTC))
            .returning(RefreshToken.id)
        )
    if claimed is None:
        revoked = await session.scalar(
            select(RefreshToken.revoked_at).where(RefreshToken.id == token.id)
        )
        if revoked is not None:  # every session ended while we waited for the lock
            raise _invalid_refresh()
        await _revoke_family_now(engine, token)
        raise Unauthenticated(
            "This refresh token was already used; every session it belongs to is revoked",
            code="REFRESH_TOKEN_REUSED",
        )
    return await _issue_tokens(session, ctx, user, family_id=token.family_id)


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """End the session this refresh token belongs to (its whole family). Unknown: no-op.

    Access tokens already issued in that session run until they expire; ``logout_everywhere``
    ends those too."""
    token = await _find_refresh_token(session, refresh_token)
    if token is None or token.revoked_at is not None:
        return
    await _end_family(session, token, "auth.logout")


async def end_every_session(
    session: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID
) -> bool:
    """Bump the user's token generation (every access token issued before stops working)
    and revoke all their refresh tokens. The generation's UPDATE locks the user's row first,
    as login and refresh do. False when there is no such user."""
    bumped = await session.scalar(
        update(User)
        .where(User.id == user_id, User.organization_id == organization_id)
        .values(token_generation=User.token_generation + 1)
        .returning(User.id)
    )
    if bumped is None:
        return False
    await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.user_id == user_id,
            RefreshToken.organization_id == organization_id,
            RefreshToken.revoked_at.is_(None),
        )
        .values(revoked_at=datetime.now(UTC))
    )
    return True


async def logout_everywhere(session: AsyncSession, principal: Principal) -> None:
    """End every session of the calling user, this one included."""
    assert principal.organization_id is not None
    if not await end_every_session(session, principal.id, principal.organization_id):
        raise Unauthenticated("This account no longer exists", code="INVALID_TOKEN")
    await record(
        session,
        principal,
        "auth.logout_all",
        "user",
        principal.id,
        organization_id=principal.organization_id,
    )


# --- me -----------------------------------------------------------------------------------


async def me(session: AsyncSession, principal: Principal) -> tuple[User, Organization]:
    user = await session.scalar(
        select(User).where(
            User.id == principal.id, User.organization_id == principal.organization_id
        )
    )
    organization = await session.get(Organization, principal.organization_id)
    if user is None or organization is None:
        raise Unauthenticated("This account no longer exists", code="INVALID_TOKEN")
    return user, organization

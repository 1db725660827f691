"""Sign-up, login, refresh-token rotation with reuse detection, logout.

Passwords are hashed with argon2id; refresh tokens are opaque random values stored as a
SHA-256 hash, rotated on every use, and grouped in families so that presenting a token that
was already used (a stolen copy, or the legitimate one after the thief used it) revokes the
whole family.
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
from server.auth.principal import Principal, hash_secret, issue_access_token
from server.db.session import set_tenant
from server.errors import Conflict, InvalidInput, RateLimited, Unauthenticated
from server.models import Organization, RefreshToken, User
from server.observability import current_client_ip
from server.passwords import check_password_policy
from server.settings import Settings

LOGIN_WINDOW_SECONDS = 60
# No whitespace, no NUL or other control character (PostgreSQL cannot store NUL).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")
_USER_ORG = text("SELECT licentia_user_org(:email)")

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


async def email_taken(session: AsyncSession, email: str) -> bool:
    return await session.scalar(_USER_ORG, {"email": email}) is not None


def email_conflict() -> Conflict:
    return Conflict("A user with this e-mail address already exists", code="EMAIL_TAKEN")


async def insert_user(session: AsyncSession, user: User) -> User:
    """Add ``user``; an e-mail taken meanwhile (the unique index decides) is 409 EMAIL_TAKEN."""
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:
        if "users_email_key" in str(exc.orig):
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
    """Create an organization with this person as its owner, and log them in.

    At most ``signups_per_hour`` per client address, counted before anything else (on its
    own transaction, before the request's session holds a connection)."""
    client_ip = current_client_ip()
    limit = ctx.settings.signups_per_hour
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
    if await email_taken(session, email):
        raise email_conflict()
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
    return SignedUp(user, organization, await _issue_tokens(session, ctx, user))


# --- login --------------------------------------------------------------------------------


async def login(
    session: AsyncSession, engine: AsyncEngine, ctx: TokenContext, *, email: str, password: str
) -> Tokens:
    """Check the password; more than the allowed failed logins a minute per e-mail or per
    client address -> 429.

    Every attempt is counted *before* the password is checked, with one atomic upsert per
    bucket on its own short transaction (so the count survives the request's rollback and
    every worker sees it), and the attempt is refused when a bucket is over the limit. So
    however many requests arrive at once, at most ``login_attempts_per_minute`` of them per
    e-mail and per address reach argon2 in a window. A successful login takes its own count
    back (in the request's transaction), so the limit is on failures: a legitimate user, or
    an office behind one address, is not locked out by its own logins. Attempts refused with
    429 stay counted.

    The limiter runs before the request's session sends its first statement: the session
    has begun its transaction but holds no pooled connection yet, so the limiter's
    connection is never awaited while the request holds another one.

    The same ``Unauthenticated`` answers an unknown e-mail and a wrong password, after the
    same argon2 work.
    """
    limit = ctx.settings.login_attempts_per_minute
    email_key = email.strip().lower()
    buckets = [ratelimit.bucket("login:email", email_key)]
    client_ip = current_client_ip()
    if client_ip:
        buckets.append(ratelimit.bucket("login:ip", client_ip))
    async with engine.begin() as counter:
        waits = [await ratelimit.hit(counter, b, limit, LOGIN_WINDOW_SECONDS) for b in buckets]
    if any(waits):
        raise RateLimited(
            "Too many failed logins; try again later",
            retry_after=max(w for w in waits if w),
        )

    user: User | None = None
    organization_id = await session.scalar(_USER_ORG, {"email": email_key})
    if organization_id is not None:
        await set_tenant(session, organization_id)
        user = await session.scalar(
            select(User).where(User.email == email_key, User.organization_id == organization_id)
        )
    if user is None:
        await verify_password(_dummy_hash(), password)
        ok = False
    else:
        ok = await verify_password(user.password_hash, password)

    if not ok or user is None:
        raise Unauthenticated("Invalid e-mail or password", code="INVALID_CREDENTIALS")

    if _hasher.check_needs_rehash(user.password_hash):
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
    tokens = await _issue_tokens(session, ctx, user)
    # Last, so the bucket rows stay locked by this transaction only until its commit.
    connection = await session.connection()
    for b in buckets:
        await ratelimit.release(connection, b, LOGIN_WINDOW_SECONDS)
    return tokens


# --- refresh and logout -------------------------------------------------------------------


def _invalid_refresh() -> Unauthenticated:
    return Unauthenticated("Invalid refresh token", code="INVALID_REFRESH_TOKEN")


async def _end_family(
    session: AsyncSession, token: RefreshToken, action: str, data: dict[str, str] | None = None
) -> None:
    """Revoke every refresh token of ``token``'s family and audit why."""
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == token.family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    await set_tenant(session, token.organization_id)
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

    The request holds no lock on the token until it claims it with one conditional UPDATE,
    so revoking a family on a side transaction (reuse detected) never waits on ourselves.
    """
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token))
    )
    if token is None or token.revoked_at is not None:
        raise _invalid_refresh()
    if token.expires_at <= datetime.now(UTC):
        raise Unauthenticated("The refresh token has expired", code="REFRESH_TOKEN_EXPIRED")
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
        await _revoke_family_now(engine, token)
        raise Unauthenticated(
            "This refresh token was already used; every session it belongs to is revoked",
            code="REFRESH_TOKEN_REUSED",
        )

    await set_tenant(session, token.organization_id)
    user = await session.scalar(
        select(User).where(User.id == token.user_id, User.organization_id == token.organization_id)
    )
    if user is None:
        raise _invalid_refresh()
    return await _issue_tokens(session, ctx, user, family_id=token.family_id)


async def logout(session: AsyncSession, refresh_token: str) -> None:
    """End the session this refresh token belongs to (its whole family). Unknown: no-op."""
    token = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token))
    )
    if token is None or token.revoked_at is not None:
        return
    await _end_family(session, token, "auth.logout")


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

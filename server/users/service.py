"""The people of an organization.

- Everyone in the organization may list and read its users.
- Owners and admins add, change and remove members; only an owner may make someone an
  owner or change or remove an owner.
- Anyone may change their own name and, with their current password, their own password,
  which ends every session of the account (its access and refresh tokens).
- E-mail addresses are unique within an organization; no other organization is consulted,
  so adding a user never tells whether the address has an account elsewhere.
- An organization always keeps at least one owner (409 LAST_OWNER).
- Admin API keys read with ``organizations:read`` and write with ``users:write``, naming the
  organization explicitly when adding a user.
- One rule decides who may manage whom (``ROLE_SCOPES``): giving someone a role (adding them
  with a password, promoting them) or changing or removing someone needs every power of that
  role. A user has them through their own role; an API key must hold every scope the role
  maps to (403 SCOPE_ESCALATION otherwise), so a key cannot make a person it could then log
  in as to reach what it was refused directly.

Roles are re-read from the database for every write, so a demoted user cannot keep acting
on the role their (still valid) access token names.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import MANAGERS, ROLE_SCOPES, Principal
from server.auth.service import (
    clean_text,
    email_conflict,
    email_taken,
    end_every_session,
    hash_password,
    insert_user,
    normalize_email,
    verify_password,
)
from server.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unauthenticated
from server.license_users import service as license_users
from server.models import Organization, User
from server.pagination import Page, paginate
from server.passwords import check_password_policy
from server.users.schemas import UserCreate, UserUpdate

PLATFORM = "platform"
"""The effective role of an admin API key: above every organization role."""


def _not_found() -> NotFound:
    return NotFound("No such user", code="USER_NOT_FOUND")


def _denied(detail: str, code: str = "INSUFFICIENT_ROLE") -> PermissionDenied:
    return PermissionDenied(detail, code=code)


def _require_powers_of(principal: Principal, actor_role: str, role: str) -> None:
    """Giving someone ``role``, or changing or removing someone who has it, needs every
    power of that role (``ROLE_SCOPES``)."""
    if principal.is_admin:
        lacking = principal.scopes_lacking(ROLE_SCOPES[role])
        if lacking:
            raise _denied(
                f"Managing a user with the {role} role needs an API key that holds every "
                f"scope of that role; this one lacks: {', '.join(lacking)}",
                code="SCOPE_ESCALATION",
            )
        return
    if not ROLE_SCOPES[role] <= ROLE_SCOPES.get(actor_role, frozenset()):
        raise _denied(f"Only an owner may give, change or remove the {role} role")


async def _actor_role(session: AsyncSession, principal: Principal) -> str:
    """The caller's role as the database has it now."""
    if principal.is_admin:
        return PLATFORM
    role = await session.scalar(
        select(User.role).where(
            User.id == principal.id, User.organization_id == principal.organization_id
        )
    )
    if role is None:
        raise Unauthenticated("This account no longer exists", code="INVALID_TOKEN")
    return role


async def _lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Serialise membership changes of one organization (the last-owner rule)."""
    await session.execute(
        select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )


async def _ensure_another_owner(session: AsyncSession, target: User) -> None:
    await _lock_organization(session, target.organization_id)
    owners = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.organization_id == target.organization_id, User.role == "owner")
    )
    if (owners or 0) <= 1:
        raise Conflict("An organization must keep at least one owner", code="LAST_OWNER")


async def list_users(
    session: AsyncSession,
    principal: Principal,
    *,
    organization_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> Page[User]:
    query = select(User)
    if not principal.is_admin:
        query = query.where(User.organization_id == principal.organization_id)
    if organization_id is not None:
        query = query.where(User.organization_id == organization_id)
    return await paginate(session, query, User.created_at, User.id, limit, cursor)


async def get_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, *, for_update: bool = False
) -> User:
    query = select(User).where(User.id == user_id)
    if not principal.is_admin:
        query = query.where(User.organization_id == principal.organization_id)
    if for_update:
        query = query.with_for_update()
    user = await session.scalar(query)
    if user is None:
        raise _not_found()
    return user


async def create_user(session: AsyncSession, principal: Principal, data: UserCreate) -> User:
    actor_role = await _actor_role(session, principal)
    if principal.is_admin:
        if data.organization_id is None:
            raise InvalidInput(
                "organization_id: required when an admin API key adds a user",
                code="ORGANIZATION_REQUIRED",
            )
        organization_id = data.organization_id
        if await session.get(Organization, organization_id) is None:
            raise NotFound("No such organization", code="ORGANIZATION_NOT_FOUND")
    else:
        organization_id = principal.organization_id  # type: ignore[assignment]
        if data.organization_id is not None and data.organization_id != organization_id:
            raise NotFound("No such organization", code="ORGANIZATION_NOT_FOUND")
        if actor_role not in MANAGERS:
            raise _denied("Only an owner or admin may add users")
    _require_powers_of(principal, actor_role, data.role)

    email = normalize_email(data.email)
    check_password_policy(data.password)
    full_name = clean_text(data.full_name, "full_name")
    if await email_taken(session, organization_id, email):
        raise email_conflict()
    user = User(
        organization_id=organization_id,
        email=email,
        full_name=full_name,
        role=data.role,
        password_hash=await hash_password(data.password),
    )
    await insert_user(session, user)
    await record(
        session,
        principal,
        "user.create",
        "user",
        user.id,
        organization_id=organization_id,
        data={"email": email, "role": data.role},
    )
    return user


async def update_user(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, data: UserUpdate
) -> User:
    target = await get_user(session, principal, user_id, for_update=True)
    actor_role = await _actor_role(session, principal)
    is_self = not principal.is_admin and target.id == principal.id
    may_edit_others = actor_role in MANAGERS or actor_role == PLATFORM
    if not is_self:
        _require_powers_of(principal, actor_role, target.role)
    changes: dict[str, Any] = {}

    if data.full_name is not None:
        if not is_self and not may_edit_others:
            raise _denied("You may only change your own name")
        full_name = clean_text(data.full_name, "full_name")
        if full_name != target.full_name:
            changes["full_name"] = full_name
            target.full_name = full_name

    if data.role is not None and data.role != target.role:
        if not may_edit_others:
            raise _denied("Only an owner or admin may change roles")
        _require_powers_of(principal, actor_role, data.role)
        if target.role == "owner":
            await _ensure_another_owner(session, target)
        changes["role"] = {"from": target.role, "to": data.role}
        target.role = data.role

    if data.password is not None:
        if not is_self:
            raise _denied("Only the user may change their own password", code="SELF_ONLY")
        if data.current_password is None or not await verify_password(
            target.password_hash, data.current_password
        ):
            raise _denied("current_password is wrong or missing", code="WRONG_PASSWORD")
        check_password_policy(data.password)
        target.password_hash = await hash_password(data.password)
        await session.flush()
        await end_every_session(session, target.id, target.organization_id)
        changes["password"] = "changed"

    if changes:
        target.updated_at = datetime.now(UTC)
        await session.flush()
        await record(
            session,
            principal,
            "user.update",
            "user",
            target.id,
            organization_id=target.organization_id,
            data=changes,
        )
    return target


async def delete_user(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    target = await get_user(session, principal, user_id, for_update=True)
    actor_role = await _actor_role(session, principal)
    if actor_role not in MANAGERS and actor_role != PLATFORM:
        raise _denied("Only an owner or admin may remove users")
    _require_powers_of(principal, actor_role, target.role)
    if target.role == "owner":
        await _ensure_another_owner(session, target)
    # named-user seats: their assignments and their machines on user licenses
    await license_users.free_seats_of_removed_user(
        session, principal, target.id, target.organization_id
    )
    await session.delete(target)
    await session.flush()
    await record(
        session,
        principal,
        "user.delete",
        "user",
        target.id,
        organization_id=target.organization_id,
        data={"email": target.email},
    )

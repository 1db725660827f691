"""Named-user seats: which members of an organization a license of a ``user`` tier is
assigned to.

- Owners and admins of the license's organization (and admin API keys) assign and unassign
  members; everyone in the organization may list them. Another organization's license or
  user answers 404.
- At most ``max_users`` users per license (409 ``USER_LIMIT``): the license's own
  ``max_users``, else its tier's (``license_rules.effective_max_users``). The license row
  is locked (``FOR UPDATE``) before counting, so concurrent assignments of one license are
  serialised by PostgreSQL and never go over, across workers and replicas; a change of the
  license's ``max_users`` (or of its tier) locks the same row and is refused below the users
  assigned (409 ``USERS_ASSIGNED``, ``refuse_fewer_seats_than_users``).
- The command line (``licentia licenses users``) acts as an admin API key does: no
  principal, an ``("cli", None)`` actor in the audit log.
- Unassigning a user, or removing them from the organization, frees their seat and
  deactivates their machines on the license (audited one by one, like any deactivation).
- The machines themselves are activated by the product with the user's access token
  (``server.product_licensing``; ``licentia_activate`` checks the assignment and counts the
  user's machines against ``machines_per_user`` under the same license lock).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server import license_rules as rules
from server.audit.service import Actor, principal_of, record
from server.auth.service import normalize_email
from server.errors import Conflict, NotFound
from server.license_users.schemas import LicenseUserRead, LicenseUsersRead
from server.models import Activation, License, LicenseUser, Tier, User

USER_UNASSIGNED = "user_unassigned"
"""``deactivation_reason`` of a machine freed because its user was unassigned."""
USER_REMOVED = "user_removed"
"""``deactivation_reason`` of a machine freed because its user left the organization."""


def _license_not_found() -> NotFound:
    return NotFound("No such license", code="LICENSE_NOT_FOUND")


@dataclass(frozen=True)
class _License:
    id: uuid.UUID
    organization_id: uuid.UUID
    seat_kind: str
    max_users: int | None
    """The license's own, else its tier's (``None`` for a ``machine`` tier)."""
    machines_per_user: int
    lease_grace_days: int


async def _license(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, *, lock: bool
) -> _License:
    principal = principal_of(actor)
    query = (
        select(
            License.id,
            License.organization_id,
            License.max_users,
            Tier.seat_kind,
            Tier.max_users.label("tier_max_users"),
            Tier.machines_per_user,
            Tier.lease_grace_days,
        )
        .join(Tier, Tier.id == License.tier_id)
        .where(License.id == license_id)
    )
    if principal is not None and not principal.is_admin:
        query = query.where(License.organization_id == principal.organization_id)
    if lock:
        query = query.with_for_update(of=License)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise _license_not_found()
    return _License(
        id=row.id,
        organization_id=row.organization_id,
        seat_kind=row.seat_kind,
        max_users=rules.effective_max_users(row.seat_kind, row.tier_max_users, row.max_users),
        machines_per_user=row.machines_per_user,
        lease_grace_days=row.lease_grace_days,
    )


def _assignments(license_: Any, now: datetime) -> Any:
    """The license's users with their live machines (``holds_seat``), oldest first."""
    machines = (
        select(func.count())
        .select_from(Activation)
        .where(
            Activation.license_id == LicenseUser.license_id,
            Activation.organization_id == LicenseUser.organization_id,
            text(rules.user_seat_sql("activations", "license_users.user_id")),
            text(rules.live_seat_sql("activations", ":grace", ":now")).bindparams(
                grace=license_.lease_grace_days, now=now
            ),
        )
        .correlate(LicenseUser)
        .scalar_subquery()
    )
    return (
        select(
            LicenseUser.user_id,
            User.email,
            User.full_name,
            User.role,
            LicenseUser.assigned_at,
            machines.label("machines"),
        )
        .join(User, User.id == LicenseUser.user_id)
        .where(
            LicenseUser.license_id == license_.id,
            LicenseUser.organization_id == license_.organization_id,
        )
        .order_by(LicenseUser.assigned_at, LicenseUser.user_id)
    )


def _read(row: Any) -> LicenseUserRead:
    return LicenseUserRead(
        user_id=row.user_id,
        email=row.email,
        full_name=row.full_name,
        role=row.role,
        assigned_at=row.assigned_at,
        machines=row.machines,
    )


async def list_users(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID
) -> LicenseUsersRead:
    """The users assigned to a license (none for a ``machine`` license)."""
    license_ = await _license(session, actor, license_id, lock=False)
    rows = (await session.execute(_assignments(license_, datetime.now(UTC)))).all()
    return LicenseUsersRead(
        license_id=license_.id,
        seat_kind=license_.seat_kind,
        max_users=license_.max_users,
        machines_per_user=license_.machines_per_user,
        users=[_read(row) for row in rows],
    )


async def _assignment(session: AsyncSession, license_: Any, user_id: uuid.UUID) -> Any:
    query = _assignments(license_, datetime.now(UTC)).where(LicenseUser.user_id == user_id)
    return (await session.execute(query)).one_or_none()


async def _assigned_count(
    session: AsyncSession, license_id: uuid.UUID, organization_id: uuid.UUID
) -> int:
    assigned = await session.scalar(
        select(func.count())
        .select_from(LicenseUser)
        .where(LicenseUser.license_id == license_id, LicenseUser.organization_id == organization_id)
    )
    return assigned or 0


async def refuse_fewer_seats_than_users(
    session: AsyncSession, license_id: uuid.UUID, organization_id: uuid.UUID, max_users: int | None
) -> None:
    """Before a license's ``max_users`` changes (its own, or its tier's with a change of
    tier) to ``max_users`` (the new effective value): 409 ``USERS_ASSIGNED`` when more users
    are assigned than that. The caller holds the license's row lock (``FOR UPDATE``), the one
    assignments take, so no assignment slips in between the count and the change."""
    assigned = await _assigned_count(session, license_id, organization_id)
    if not rules.users_fit(assigned, max_users):
        raise Conflict(
            f"{assigned} user(s) are assigned to this license and it would allow {max_users}; "
            f"unassign {assigned - (max_users or 0)} first",
            code="USERS_ASSIGNED",
            assigned=assigned,
            max_users=max_users,
            excess=assigned - (max_users or 0),
        )


async def member_id(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, user: str
) -> uuid.UUID:
    """A member of the license's organization named by their id or their e-mail address
    (e-mails are unique within an organization); 404 ``USER_NOT_FOUND`` for anyone else.
    An id is returned as it is: assigning and unassigning check it themselves."""
    try:
        return uuid.UUID(user)
    except ValueError:
        pass
    license_ = await _license(session, actor, license_id, lock=False)
    found = await session.scalar(
        select(User.id).where(
            User.organization_id == license_.organization_id,
            User.email == normalize_email(user),
        )
    )
    if found is None:
        raise NotFound(
            "No user with this e-mail in the license's organization", code="USER_NOT_FOUND"
        )
    return found


async def assign_user(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[LicenseUserRead, bool]:
    """Assign a member of the license's organization; ``(user, False)`` when they already
    were (nothing changes). Under the license's row lock: never more than ``max_users``."""
    license_ = await _license(session, actor, license_id, lock=True)
    if license_.seat_kind != rules.USER_SEATS:
        raise Conflict(
            "This license's tier counts machines, not named users (seat_kind 'machine')",
            code="NOT_A_USER_LICENSE",
        )
    user = await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == license_.organization_id)
    )
    if user is None:
        raise NotFound("No such user in the license's organization", code="USER_NOT_FOUND")
    existing = await _assignment(session, license_, user_id)
    if existing is not None:
        return _read(existing), False
    assigned = await _assigned_count(session, license_.id, license_.organization_id)
    if not rules.user_seat_available(assigned, license_.max_users or 0):
        raise Conflict(
            f"All {license_.max_users} user seat(s) of this license are assigned; unassign "
            "someone first",
            code="USER_LIMIT",
        )
    await session.execute(
        insert(LicenseUser).values(
            license_id=license_.id, user_id=user.id, organization_id=license_.organization_id
        )
    )
    await record(
        session,
        actor,
        "license.user_assign",
        "license",
        license_.id,
        organization_id=license_.organization_id,
        data={"user_id": str(user.id), "email": user.email},
    )
    found = await _assignment(session, license_, user_id)
    assert found is not None
    return _read(found), True


async def _free(
    session: AsyncSession,
    actor: Actor,
    license_id: uuid.UUID,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    reason: str,
) -> bool:
    """Remove the user's assignment to one license (the caller holds its row lock) and
    deactivate their machines on it, audited. ``False`` when they were not assigned."""
    now = datetime.now(UTC)
    unassigned = await session.scalar(
        delete(LicenseUser)
        .where(
            LicenseUser.license_id == license_id,
            LicenseUser.organization_id == organization_id,
            LicenseUser.user_id == user_id,
        )
        .returning(LicenseUser.user_id)
    )
    freed = (
        await session.scalars(
            update(Activation)
            .where(
                Activation.license_id == license_id,
                Activation.organization_id == organization_id,
                Activation.user_id == user_id,
                Activation.deactivated_at.is_(None),
            )
            .values(deactivated_at=now, deactivation_reason=reason)
            .returning(Activation.id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    for activation_id in freed:
        await record(
            session,
            actor,
            "activation.deactivate",
            "activation",
            activation_id,
            organization_id=organization_id,
            data={"license_id": str(license_id), "reason": reason},
        )
    if unassigned is not None:
        await record(
            session,
            actor,
            "license.user_unassign",
            "license",
            license_id,
            organization_id=organization_id,
            data={"user_id": str(user_id), "machines_freed": len(freed), "reason": reason},
        )
    return unassigned is not None or bool(freed)


async def unassign_user(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    """Free the user's seat and deactivate their machines on this license."""
    license_ = await _license(session, actor, license_id, lock=True)
    if not await _free(
        session, actor, license_.id, license_.organization_id, user_id, USER_UNASSIGNED
    ):
        raise NotFound("This user is not assigned to this license", code="LICENSE_USER_NOT_FOUND")


async def free_seats_of_removed_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, organization_id: uuid.UUID
) -> None:
    """Before a user leaves the organization: every license assignment of theirs, and every
    machine of theirs still holding a seat, is freed (each license locked, in id order)."""
    assigned = await session.scalars(
        select(LicenseUser.license_id).where(
            LicenseUser.user_id == user_id, LicenseUser.organization_id == organization_id
        )
    )
    activated = await session.scalars(
        select(Activation.license_id).where(
            Activation.user_id == user_id,
            Activation.organization_id == organization_id,
            Activation.deactivated_at.is_(None),
        )
    )
    license_ids = set(assigned) | set(activated)
    if not license_ids:
        return
    locked = await session.scalars(
        select(License.id)
        .where(License.id.in_(license_ids), License.organization_id == organization_id)
        .order_by(License.id)
        .with_for_update()
    )
    for license_id in locked.all():
        await _free(session, actor, license_id, organization_id, user_id, USER_REMOVED)

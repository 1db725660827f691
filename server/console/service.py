"""The vendor's staff: their accounts, signing in, and the console's overview figures.

Staff accounts belong to no organization; a role (admin, support, viewer) maps onto the API's
scopes (``server.auth.principal.STAFF_ROLE_SCOPES``). Passwords are argon2id; signing in is
``server.auth.service.authenticate_staff``, limited exactly as the API's logins are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import license_rules as rules
from server.audit.service import record
from server.auth.principal import STAFF_ROLE_SCOPES, Principal
from server.auth.service import (
    check_password,
    hash_password,
    normalize_email,
)
from server.errors import Conflict, InvalidInput, PermissionDenied
from server.models import StaffAccount
from server.passwords import check_password_policy

EXPIRING_WITHIN = timedelta(days=30)
ACTIVATION_DAYS = 30
VALIDATION_HOURS = 48


def _check_role(role: str) -> str:
    if role not in STAFF_ROLE_SCOPES:
        raise InvalidInput(
            f"role: one of {', '.join(sorted(STAFF_ROLE_SCOPES))}", code="INVALID_STAFF_ROLE"
        )
    return role


async def create_staff(
    session: AsyncSession, *, email: str, role: str, password: str
) -> StaffAccount:
    """A new staff account (the command line creates them: there is no sign-up)."""
    email = normalize_email(email)
    _check_role(role)
    check_password_policy(password)
    account = StaffAccount(
        id=uuid.uuid4(), email=email, role=role, password_hash=await hash_password(password)
    )
    session.add(account)
    try:
        await session.flush()
    except IntegrityError as exc:
        if "staff_accounts_email_key" in str(exc.orig):
            raise Conflict(
                "A staff account with this e-mail address exists", code="EMAIL_TAKEN"
            ) from None
        raise
    await session.refresh(account)
    await record(
        session, None, "staff.create", "staff", account.id, data={"email": email, "role": role}
    )
    return account


async def change_password(
    session: AsyncSession, principal: Principal, *, current: str, new: str
) -> StaffAccount:
    """A new password ends every session of the account (its generation moves on)."""
    account = await session.scalar(
        select(StaffAccount).where(StaffAccount.id == principal.id).with_for_update()
    )
    if account is None or not await check_password(account.password_hash, current):
        raise PermissionDenied("The current password is wrong", code="WRONG_PASSWORD")
    check_password_policy(new)
    await session.execute(
        update(StaffAccount)
        .where(StaffAccount.id == account.id)
        .values(
            password_hash=await hash_password(new),
            token_generation=StaffAccount.token_generation + 1,
            updated_at=datetime.now(UTC),
        )
    )
    await record(session, principal, "staff.password_change", "staff", account.id)
    await session.refresh(account)
    return account


# --- the overview ------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    by_status: list[tuple[str, int]]
    by_product: list[tuple[str, int]]
    live_activations: int
    activations_per_day: list[tuple[date, int]]
    validations_per_hour: list[tuple[datetime, int]]
    """Counted by each process in memory and written every few seconds
    (``server.product_licensing.usage``): the current hour trails by those seconds."""


_BY_STATUS = text(
    f"SELECT {rules.shown_status_sql('licenses', ':now')} AS status, count(*) AS n "
    "FROM licenses GROUP BY 1 ORDER BY 1"
)
_BY_PRODUCT = text(
    "SELECT products.code AS product, count(licenses.id) AS n FROM products "
    "LEFT JOIN licenses ON licenses.product_id = products.id "
    "GROUP BY products.code ORDER BY products.code"
)
_LIVE = text(
    "SELECT count(*) FROM activations "
    "JOIN licenses ON licenses.id = activations.license_id "
    "AND licenses.organization_id = activations.organization_id "
    "JOIN tiers ON tiers.id = licenses.tier_id "
    f"WHERE {rules.live_seat_sql('activations', 'tiers.lease_grace_days', ':now')}"
)
_PER_DAY = text(
    "SELECT (activated_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM activations "
    "WHERE activated_at >= :since GROUP BY 1"
)
_PER_HOUR = text("SELECT hour, count AS n FROM validation_counts WHERE hour >= :since")


async def overview(session: AsyncSession, now: datetime | None = None) -> Overview:
    """Across every organization (the caller is staff: the transaction is the platform's)."""
    now = now or datetime.now(UTC)
    by_status = [(r.status, r.n) for r in await session.execute(_BY_STATUS, {"now": now})]
    by_product = [(r.product, r.n) for r in await session.execute(_BY_PRODUCT)]
    live = await session.scalar(_LIVE, {"now": now}) or 0
    first = (now - timedelta(days=ACTIVATION_DAYS - 1)).date()
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    counts = {r.day: r.n for r in await session.execute(_PER_DAY, {"since": since})}
    days = [first + timedelta(days=i) for i in range(ACTIVATION_DAYS)]
    this_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=VALIDATION_HOURS - 1 - i) for i in range(VALIDATION_HOURS)]
    rows = await session.execute(_PER_HOUR, {"since": hours[0]})
    validations: dict[datetime, int] = {r.hour: r.n for r in rows}
    return Overview(
        by_status,
        by_product,
        live,
        [(d, counts.get(d, 0)) for d in days],
        [(h, validations.get(h, 0)) for h in hours],
    )

"""License management: issue, read, change, suspend/reinstate/revoke/renew, offline tokens,
and freeing seats. Admins (API keys) act on every organization; users only on their own.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Select, and_, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from keys.tokens import IssuedToken, issue_license_token
from server import license_rules as rules
from server.audit.service import record
from server.auth.principal import Principal
from server.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from server.license_admin import idempotency
from server.license_admin.facts import new_license_key
from server.license_admin.schemas import (
    ActivationRead,
    LicenseCreate,
    LicenseCreated,
    LicenseRead,
    LicenseUpdate,
    RenewRequest,
    Status,
)
from server.models import Activation, License, Organization, Product, Tier
from server.pagination import Page, after_cursor, encode_cursor, paginate
from server.signing_keys.keyring import Keyring
from server.validation import check_datetime

Actor = Principal | tuple[str, str | None]
MAX_METADATA_BYTES = 8 * 1024


# --- reading: one statement for licenses + product + tier + live seat counts -----------------


def _license_select(now: datetime) -> Select[Any]:
    live_seats = (
        select(func.count())
        .select_from(Activation)
        .where(
            Activation.license_id == License.id,
            Activation.organization_id == License.organization_id,
            text(rules.live_seat_sql("activations", "tiers.lease_grace_days", ":now")).bindparams(
                now=now
            ),
        )
        .correlate(License, Tier)
        .scalar_subquery()
    )
    return (
        select(
            License.id,
            License.key_prefix,
            License.organization_id,
            Product.code.label("product"),
            Tier.code.label("tier"),
            License.status,
            License.features,
            Tier.features.label("tier_features"),
            License.max_activations,
            Tier.max_activations.label("tier_max_activations"),
            live_seats.label("activations_count"),
            License.starts_at,
            License.expires_at,
            License.created_at,
            License.metadata_.label("metadata"),
        )
        .join(Product, Product.id == License.product_id)
        .join(Tier, Tier.id == License.tier_id)
    )


def _read(row: Any, now: datetime) -> LicenseRead:
    terms = rules.LicenseTerms.from_row(row._mapping)
    return LicenseRead(
        id=row.id,
        key_prefix=row.key_prefix,
        organization_id=row.organization_id,
        product=row.product,
        tier=row.tier,
        status=rules.shown_status(terms.status(now)),
        features=terms.features,
        max_activations=terms.max_activations,
        activations_count=row.activations_count,
        starts_at=row.starts_at,
        expires_at=row.expires_at,
        created_at=row.created_at,
        metadata=row.metadata,
    )


_Query = TypeVar("_Query", bound=Select)


def _visible_to(query: _Query, principal: Principal | None) -> _Query:
    """Tenancy in the query itself (row-level security is the backstop)."""
    if principal is not None and not principal.is_admin:
        return query.where(License.organization_id == principal.organization_id)
    return query


def _not_found() -> NotFound:
    return NotFound("No such license", code="LICENSE_NOT_FOUND")


async def _license_row(
    session: AsyncSession, principal: Principal | None, license_id: uuid.UUID, now: datetime
) -> Any:
    query = _visible_to(_license_select(now).where(License.id == license_id), principal)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise _not_found()
    return row


async def get_license(
    session: AsyncSession,
    principal: Principal | None,
    license_id: uuid.UUID,
    *,
    now: datetime | None = None,
) -> LicenseRead:
    now = now or datetime.now(UTC)
    return _read(await _license_row(session, principal, license_id, now), now)


async def license_id_for_key(
    session: AsyncSession, principal: Principal, license_key: str
) -> uuid.UUID | None:
    """The id of the license this key opens, if the caller may see it."""
    query = _visible_to(
        select(License.id).where(License.key_hash == rules.hash_license_key(license_key)),
        principal,
    )
    return await session.scalar(query)


def _status_filter(status: Status, now: datetime) -> Any:
    return text(f"{rules.shown_status_sql('licenses', ':now')} = :status").bindparams(
        now=now, status=status
    )


async def list_licenses(
    session: AsyncSession,
    principal: Principal | None,
    *,
    organization_id: uuid.UUID | None = None,
    product: str | None = None,
    status: Status | None = None,
    tier: str | None = None,
    key_prefix: str | None = None,
    expires_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> Page[LicenseRead]:
    """Oldest first, keyset-paginated on (created_at, id). ``key_prefix`` matches the start
    of the stored display prefix; ``expires_before`` leaves out perpetual licenses."""
    now = now or datetime.now(UTC)
    query = _visible_to(_license_select(now), principal)
    if organization_id is not None:
        query = query.where(License.organization_id == organization_id)
    if product is not None:
        query = query.where(Product.code == product)
    if tier is not None:
        query = query.where(Tier.code == tier)
    if key_prefix:
        query = query.where(License.key_prefix.startswith(key_prefix, autoescape=True))
    if expires_before is not None:
        query = query.where(License.expires_at < expires_before)
    if status is not None:
        query = query.where(_status_filter(status, now))
    if cursor:
        query = after_cursor(query, License.created_at, License.id, cursor)
    query = query.order_by(License.created_at, License.id).limit(limit + 1)
    rows = list((await session.execute(query)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return Page(items=[_read(row, now) for row in rows], next_cursor=next_cursor)


# --- issuing -------------------------------------------------------------------------------


def _check_metadata(metadata: dict[str, Any]) -> None:
    """JSON PostgreSQL can store (no NUL, finite numbers), and not too large."""

    def walk(value: Any) -> None:
        if isinstance(value, str) and "\x00" in value:
            raise InvalidInput("metadata must not contain NUL characters", code="INVALID_METADATA")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInput("metadata numbers must be finite", code="INVALID_METADATA")
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(metadata)
    if len(json.dumps(metadata, separators=(",", ":"))) > MAX_METADATA_BYTES:
        raise InvalidInput(
            f"metadata is larger than {MAX_METADATA_BYTES} bytes", code="METADATA_TOO_LARGE"
        )


async def _catalog_tier(session: AsyncSession, product: str, tier: str) -> tuple[uuid.UUID, Tier]:
    row = (
        await session.execute(
            select(Product.id, Tier)
            .select_from(Product)
            .outerjoin(Tier, and_(Tier.product_id == Product.id, Tier.code == tier))
            .where(Product.code == product)
        )
    ).one_or_none()
    if row is None:
        raise InvalidInput(f"No product {product!r}", code="UNKNOWN_PRODUCT")
    if row.Tier is None:
        raise InvalidInput(f"Product {product!r} has no tier {tier!r}", code="UNKNOWN_TIER")
    return row.id, row.Tier


async def issue_license(
    session: AsyncSession, actor: Actor, data: LicenseCreate, *, now: datetime | None = None
) -> LicenseCreated:
    """Create a license and return it with its key (the only time the key is shown)."""
    now = now or datetime.now(UTC)
    if data.expires_at is not None and data.duration_days is not None:
        raise InvalidInput("Give expires_at or duration_days, not both", code="CONFLICTING_EXPIRY")
    _check_metadata(data.metadata)
    if data.expires_at is not None:
        check_datetime(data.expires_at, "expires_at")
    organization = await session.scalar(
        select(Organization.id).where(Organization.id == data.organization_id)
    )
    if organization is None:
        raise InvalidInput("No such organization", code="UNKNOWN_ORGANIZATION")
    product_id, tier = await _catalog_tier(session, data.product, data.tier)
    days = data.duration_days or tier.duration_days
    expires_at = data.expires_at or (now + timedelta(days=days) if days else None)
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at must be in the future", code="EXPIRES_IN_PAST")

    key, prefix, key_hash = new_license_key()
    license_id = (
        await session.execute(
            insert(License)
            .values(
                organization_id=data.organization_id,
                product_id=product_id,
                tier_id=tier.id,
                key_hash=key_hash,
                key_prefix=prefix,
                status="active",
                starts_at=now,
                expires_at=expires_at,
                max_activations=data.max_activations,
                features=data.features,
                metadata_=data.metadata,
            )
            .returning(License.id)
        )
    ).scalar_one()
    await record(
        session,
        actor,
        "license.issue",
        "license",
        license_id,
        organization_id=data.organization_id,
        data={
            "product": data.product,
            "tier": data.tier,
            "key_prefix": prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    read = await get_license(session, None, license_id, now=now)
    return LicenseCreated(**msgspec.structs.asdict(read), key=key)


@dataclass(frozen=True)
class Issued:
    license: LicenseCreated
    status_code: int
    replayed: bool


async def issue_license_once(
    session: AsyncSession,
    kek: bytes,
    actor: Principal,
    data: LicenseCreate,
    idempotency_key: str | None,
) -> Issued:
    """``issue_license`` honouring an ``Idempotency-Key``: the same key and body within 24
    hours replays the first response and issues nothing; another body is a 422."""
    if idempotency_key is None:
        return Issued(await issue_license(session, actor, data), 201, replayed=False)
    scope = f"api_key:{actor.id}:license.issue"
    fingerprint = idempotency.request_hash(msgspec.json.encode(data, order="sorted"))
    stored = await idempotency.claim(
        session, kek, scope=scope, key=idempotency_key, fingerprint=fingerprint
    )
    if stored is not None:
        replay = msgspec.json.decode(stored.body, type=LicenseCreated)
        return Issued(replay, stored.status, replayed=True)
    created = await issue_license(session, actor, data)
    await idempotency.complete(
        session,
        kek,
        scope=scope,
        key=idempotency_key,
        status=201,
        body=msgspec.json.encode(created),
    )
    return Issued(created, 201, replayed=False)


# --- changing ------------------------------------------------------------------------------


async def _locked(
    session: AsyncSession, principal: Principal | None, license_id: uuid.UUID
) -> License:
    query = select(License).where(License.id == license_id).with_for_update()
    if principal is not None and not principal.is_admin:
        query = query.where(License.organization_id == principal.organization_id)
    row = await session.scalar(query)
    if row is None:
        raise _not_found()
    return row


def _refuse_revoked(row: License) -> None:
    if row.status == "revoked":
        raise InvalidTransition("The license is revoked; that is final", code="LICENSE_REVOKED")


async def _changed(
    session: AsyncSession,
    actor: Actor,
    row: License,
    action: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> LicenseRead:
    row.updated_at = now
    await session.flush()
    await record(
        session, actor, action, "license", row.id, organization_id=row.organization_id, data=data
    )
    return await get_license(session, None, row.id, now=now)


async def update_license(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, data: LicenseUpdate
) -> LicenseRead:
    now = datetime.now(UTC)
    row = await _locked(session, None, license_id)
    _refuse_revoked(row)
    fields: list[str] = []
    if data.expires_at is not msgspec.UNSET:
        if data.expires_at is not None:
            check_datetime(data.expires_at, "expires_at")
        row.expires_at = data.expires_at
        fields.append("expires_at")
    if data.max_activations is not msgspec.UNSET:
        row.max_activations = data.max_activations
        fields.append("max_activations")
    if data.features is not msgspec.UNSET:
        row.features = data.features
        fields.append("features")
    if data.metadata is not msgspec.UNSET:
        _check_metadata(data.metadata)
        row.metadata_ = data.metadata
        fields.append("metadata")
    if not fields:
        return await get_license(session, None, license_id, now=now)
    return await _changed(session, actor, row, "license.update", now, {"fields": fields})


async def suspend_license(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID
) -> LicenseRead:
    row = await _locked(session, None, license_id)
    _refuse_revoked(row)
    if row.status == "suspended":
        raise InvalidTransition("The license is already suspended", code="ALREADY_SUSPENDED")
    row.status = "suspended"
    return await _changed(session, actor, row, "license.suspend", datetime.now(UTC))


async def reinstate_license(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID
) -> LicenseRead:
    row = await _locked(session, None, license_id)
    _refuse_revoked(row)
    if row.status != "suspended":
        raise InvalidTransition("Only a suspended license can be reinstated", code="NOT_SUSPENDED")
    row.status = "active"
    return await _changed(session, actor, row, "license.reinstate", datetime.now(UTC))


async def revoke_license(session: AsyncSession, actor: Actor, license_id: uuid.UUID) -> LicenseRead:
    row = await _locked(session, None, license_id)
    if row.status == "revoked":
        raise InvalidTransition("The license is already revoked", code="ALREADY_REVOKED")
    previous = row.status
    row.status = "revoked"
    return await _changed(
        session, actor, row, "license.revoke", datetime.now(UTC), {"previous": previous}
    )


async def renew_license(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, data: RenewRequest
) -> LicenseRead:
    """Move the expiry later: to ``expires_at``, or ``duration_days`` past the current expiry
    (past now, if it has already run out). A perpetual license has nothing to renew."""
    if (data.expires_at is None) == (data.duration_days is None):
        raise InvalidInput("Give exactly one of expires_at or duration_days", code="RENEW_TERM")
    now = datetime.now(UTC)
    row = await _locked(session, None, license_id)
    _refuse_revoked(row)
    if row.expires_at is None:
        raise InvalidTransition(
            "The license is perpetual; set an expiry with PATCH instead", code="LICENSE_PERPETUAL"
        )
    if data.duration_days is not None:
        try:
            new_expiry = max(row.expires_at, now) + timedelta(days=data.duration_days)
        except OverflowError:
            new_expiry = datetime.max.replace(tzinfo=UTC)
        check_datetime(new_expiry, "the renewed expiry")
    else:
        new_expiry = check_datetime(data.expires_at, "expires_at")  # type: ignore[arg-type]
        if new_expiry <= now or new_expiry <= row.expires_at:
            raise InvalidInput(
                "expires_at must be later than now and than the current expiry",
                code="RENEWAL_NOT_LATER",
            )
    previous = row.expires_at
    row.expires_at = new_expiry
    return await _changed(
        session,
        actor,
        row,
        "license.renew",
        now,
        {"previous_expires_at": previous.isoformat(), "expires_at": new_expiry.isoformat()},
    )


# --- the offline license token -------------------------------------------------------------


async def license_token(
    session: AsyncSession,
    principal: Principal,
    license_id: uuid.UUID,
    *,
    keyring: Keyring,
    issuer: str,
    lifetime_seconds: int,
    now: datetime | None = None,
) -> IssuedToken:
    """A signed ``license+jwt`` for offline use without machine binding, valid until
    min(license expiry, now + lifetime). Refused (403) unless the license is usable now.

    Time is counted in whole seconds, as tokens count it (and as the licensing API does): a
    license that expires within the current second is already expired here."""
    now = rules.whole_second(now or datetime.now(UTC))
    row = await _license_row(session, principal, license_id, now)
    terms = rules.LicenseTerms.from_row(row._mapping)
    rules.refuse_unless_usable(terms.status(now))
    signer = await keyring.signer()
    issued = issue_license_token(
        signer,
        terms.subject(),
        issuer=issuer,
        now=now,
        lifetime=timedelta(seconds=lifetime_seconds),
    )
    await record(
        session,
        principal,
        "license.token",
        "license",
        terms.id,
        organization_id=terms.organization_id,
        data={"jti": issued.jti, "expires_at": issued.expires_at.isoformat()},
    )
    return issued


# --- activations (machines holding seats) --------------------------------------------------


async def _license_tier(
    session: AsyncSession, principal: Principal, license_id: uuid.UUID, *, lock: bool = False
) -> Any:
    query = (
        select(
            License.id,
            License.organization_id,
            Tier.lease_grace_days,
            Tier.max_deactivations_per_day,
        )
        .join(Tier, Tier.id == License.tier_id)
        .where(License.id == license_id)
    )
    if lock:
        query = query.with_for_update(of=License)
    row = (await session.execute(_visible_to(query, principal))).one_or_none()
    if row is None:
        raise _not_found()
    return row


def _activation(row: Activation, grace_days: int, now: datetime) -> ActivationRead:
    fields = {f: getattr(row, f) for f in ActivationRead.__struct_fields__ if f != "holds_seat"}
    holds_seat = rules.holds_seat(row.deactivated_at, row.lease_expires_at, grace_days, now)
    return ActivationRead(**fields, holds_seat=holds_seat)


async def list_activations(
    session: AsyncSession,
    principal: Principal,
    license_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
) -> Page[ActivationRead]:
    now = datetime.now(UTC)
    license_ = await _license_tier(session, principal, license_id)
    query = select(Activation).where(
        Activation.license_id == license_.id,
        Activation.organization_id == license_.organization_id,
    )
    page = await paginate(session, query, Activation.activated_at, Activation.id, limit, cursor)
    return Page(
        items=[_activation(row, license_.lease_grace_days, now) for row in page.items],
        next_cursor=page.next_cursor,
    )


async def deactivate(
    session: AsyncSession, principal: Principal, license_id: uuid.UUID, activation_id: uuid.UUID
) -> None:
    """Free a seat. Admins always may; an organization's owners and admins within the
    tier's daily deactivation limit (the same limit products are held to)."""
    now = datetime.now(UTC)
    license_ = await _license_tier(session, principal, license_id, lock=True)
    activation = await session.scalar(
        select(Activation)
        .where(
            Activation.id == activation_id,
            Activation.license_id == license_.id,
            Activation.organization_id == license_.organization_id,
        )
        .with_for_update()
    )
    if activation is None:
        raise NotFound("No such activation", code="ACTIVATION_NOT_FOUND")
    if activation.deactivated_at is not None:
        raise Conflict("The machine is already deactivated", code="ALREADY_DEACTIVATED")
    if not principal.is_admin:
        # the same limit, counted the same way, as the licensing API's deactivate
        recent = await session.scalar(
            text(rules.recent_deactivations_sql()),
            {"license_id": license_.id, "org": license_.organization_id, "now": now},
        )
        if not rules.deactivation_allowed(recent or 0, license_.max_deactivations_per_day):
            raise rules.deactivation_limit_reached(license_.max_deactivations_per_day)
    reason = "admin" if principal.is_admin else rules.USER_DEACTIVATION
    activation.deactivated_at = now
    activation.deactivation_reason = reason
    await session.flush()
    await record(
        session,
        principal,
        "activation.deactivate",
        "activation",
        activation.id,
        organization_id=license_.organization_id,
        data={"license_id": str(license_.id), "reason": reason},
    )

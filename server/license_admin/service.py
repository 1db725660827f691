"""License management: issue, read, change, suspend/reinstate/revoke/renew, offline tokens,
and freeing seats. Admins (API keys) act on every organization; users only on their own.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import msgspec
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from keys.tokens import issue_license_token
from server import idempotency
from server import license_rules as rules
from server.audit.service import record
from server.auth.principal import Principal
from server.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from server.license_admin.facts import new_license_key
from server.license_admin.schemas import (
    ActivationRead,
    ChangeTierRequest,
    LicenseCreate,
    LicenseCreated,
    LicenseRead,
    LicenseToken,
    LicenseUpdate,
    RenewRequest,
    Status,
)
from server.license_users import service as license_users
from server.models import Activation, License, Organization, Product, Tier
from server.pagination import Page, after_cursor, encode_cursor, paginate
from server.signing_keys.keyring import Keyring
from server.validation import check_datetime, datetime_problem

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
            License.max_users,
            Tier.max_users.label("tier_max_users"),
            Tier.seat_kind,
            live_seats.label("activations_count"),
            License.starts_at,
            License.expires_at,
            License.created_at,
            License.metadata_.label("metadata"),
            Tier.expiry_behavior,
            Tier.is_trial,
        )
        .join(Product, Product.id == License.product_id)
        .join(Tier, Tier.id == License.tier_id)
    )


def _read(row: Any, now: datetime) -> LicenseRead:
    return read_license(row._mapping, now)


def read_license(values: Mapping[str, Any], now: datetime) -> LicenseRead:
    """A license as the admin API shows it at ``now``, from the columns of
    ``_license_select`` (the webhook outbox snapshots the same columns)."""
    terms = rules.LicenseTerms.from_row(values)
    return LicenseRead(
        id=values["id"],
        key_prefix=values["key_prefix"],
        organization_id=values["organization_id"],
        product=values["product"],
        tier=values["tier"],
        status=rules.shown_status(terms.status(now)),
        features=terms.features,
        max_activations=terms.max_activations,
        max_users=rules.effective_max_users(
            values["seat_kind"], values["tier_max_users"], values["max_users"]
        ),
        activations_count=values["activations_count"],
        starts_at=values["starts_at"],
        expires_at=values["expires_at"],
        created_at=values["created_at"],
        metadata=values["metadata"],
        updates_until=terms.updates_until,
        is_trial=terms.is_trial,
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


MAX_SEARCH_LENGTH = 200


def _like_pattern(needle: str) -> str:
    """``%needle%`` for ``ILIKE ... ESCAPE '\\'``, the needle's own ``%``, ``_`` and ``\\``
    matched literally."""
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# A license's metadata matches when any string or number in it, at any depth, contains the
# text (keys and JSON punctuation do not count).
_METADATA_MATCH = """
    EXISTS (SELECT 1 FROM jsonb_path_query(licenses.metadata, 'strict $.**') AS v(value)
            WHERE jsonb_typeof(v.value) IN ('string', 'number')
              AND (v.value #>> '{}') ILIKE :search ESCAPE '\\')
"""


def _search_filter(q: str) -> Any:
    """Free text, case-insensitive, over the organization's name and the license's metadata
    values; the text is a bound parameter, its wildcards matched literally."""
    needle = q.strip()
    if not needle:
        raise InvalidInput(
            "q: must contain a character other than white space",
            errors=[{"key": "q", "message": "blank search text", "source": "query"}],
        )
    pattern = _like_pattern(needle)
    organization_match = (
        select(Organization.id)
        .where(
            Organization.id == License.organization_id,
            Organization.name.ilike(pattern, escape="\\"),
        )
        .exists()
    )
    return or_(organization_match, text(_METADATA_MATCH).bindparams(search=pattern))


def _check_query_datetime(value: datetime, name: str) -> datetime:
    if problem := datetime_problem(value):
        raise InvalidInput(
            f"{name}: {problem}", errors=[{"key": name, "message": problem, "source": "query"}]
        )
    return value


KEY_PREFIX_PATTERN = r"^\s*[Ll][Kk]-[0-9A-Za-z]{5}\s*$"
"""A key's display prefix as a customer reads it out (``LK-XXXXX``, any case)."""


def normalize_key_prefix(key_prefix: str) -> str:
    """The stored prefix (``LK-XXXXX``) of what a customer reads out: case and surrounding
    white space do not matter, as for the key itself."""
    if not re.fullmatch(KEY_PREFIX_PATTERN, key_prefix):
        problem = "must be a key prefix like LK-7QX2M"
        raise InvalidInput(
            f"key_prefix: {problem}",
            errors=[{"key": "key_prefix", "message": problem, "source": "query"}],
        )
    return key_prefix.strip().upper()


async def list_licenses(
    session: AsyncSession,
    principal: Principal | None,
    *,
    organization_id: uuid.UUID | None = None,
    product: str | None = None,
    status: Status | None = None,
    tier: str | None = None,
    expires_before: datetime | None = None,
    key_prefix: str | None = None,
    q: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> Page[LicenseRead]:
    """Oldest first, keyset-paginated on (created_at, id). Filters combine (AND):
    ``expires_before`` (licenses that expire strictly before it, expired ones included;
    perpetual ones never match), ``key_prefix`` (the stored ``LK-XXXXX``), ``q`` (free
    text over the organization's name and the metadata's values, case-insensitive)."""
    now = now or datetime.now(UTC)
    query = _visible_to(_license_select(now), principal)
    if organization_id is not None:
        query = query.where(License.organization_id == organization_id)
    if product is not None:
        query = query.where(Product.code == product)
    if tier is not None:
        query = query.where(Tier.code == tier)
    if status is not None:
        query = query.where(_status_filter(status, now))
    if expires_before is not None:
        before = _check_query_datetime(expires_before, "expires_before")
        query = query.where(License.expires_at < before)
    if key_prefix is not None:
        query = query.where(License.key_prefix == normalize_key_prefix(key_prefix))
    if q is not None:
        query = query.where(_search_filter(q))
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
    if data.max_users is not None:
        _refuse_max_users_unless_user_tier(tier)
    if tier.is_trial and not data.allow_repeat_trial:
        await _refuse_repeat_trial(session, data.organization_id, product_id)

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
                max_users=data.max_users,
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


def _refuse_max_users_unless_user_tier(tier: Tier) -> None:
    """A license's own ``max_users`` only for a tier of named users (a ``machine`` tier's
    license has no users; a stored override waits through a change to such a tier)."""
    if tier.seat_kind != rules.USER_SEATS:
        raise InvalidInput(
            f"max_users: tier {tier.code!r} counts machines, not named users (seat_kind 'machine')",
            code="MAX_USERS_NOT_APPLICABLE",
        )


async def _refuse_users_over(
    session: AsyncSession, row: License, tier: Tier, override: int | None
) -> None:
    """The license (locked) moving to ``tier`` with ``override`` as its own ``max_users``:
    409 ``USERS_ASSIGNED`` when that leaves fewer user seats than users assigned."""
    await license_users.refuse_fewer_seats_than_users(
        session,
        row.id,
        row.organization_id,
        rules.effective_max_users(tier.seat_kind, tier.max_users, override),
    )


async def _refuse_repeat_trial(
    session: AsyncSession, organization_id: uuid.UUID, product_id: uuid.UUID
) -> None:
    """One trial-tier license per organization and product. The organization's row is locked
    first, so two concurrent issues for one organization cannot both pass the check."""
    await session.execute(
        select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )
    earlier = await session.scalar(
        select(License.id)
        .join(Tier, Tier.id == License.tier_id)
        .where(
            License.organization_id == organization_id,
            License.product_id == product_id,
            Tier.is_trial,
        )
        .limit(1)
    )
    if earlier is not None:
        raise Conflict(
            "This organization already had a trial of this product; pass allow_repeat_trial "
            "to issue another",
            code="TRIAL_ALREADY_USED",
            license_id=str(earlier),
        )


@dataclass(frozen=True)
class Issued:
    license: LicenseCreated
    status_code: int
    replayed: bool


def _replayed(body: bytes) -> LicenseCreated:
    """A stored first answer. One stored before migration 0010 has no ``max_users`` (it is
    replayed with ``null``, for the 24 hours such an answer is kept)."""
    stored = msgspec.json.decode(body)
    stored.setdefault("max_users", None)
    return msgspec.convert(stored, LicenseCreated)


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
        return Issued(_replayed(stored.body), stored.status, replayed=True)
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
    if data.max_users is not msgspec.UNSET:
        tier = await session.get_one(Tier, row.tier_id)
        if data.max_users is not None:
            _refuse_max_users_unless_user_tier(tier)
        await _refuse_users_over(session, row, tier, data.max_users)
        row.max_users = data.max_users
        fields.append("max_users")
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


async def change_tier(
    session: AsyncSession,
    actor: Actor,
    license_id: uuid.UUID,
    data: ChangeTierRequest,
    *,
    now: datetime | None = None,
) -> LicenseRead:
    """Move a license to another tier of its product: same id, key and live activations.

    The license row is locked first (``FOR UPDATE``, as every seat decision of the licensing
    API locks it), so no activation is decided while the seats are counted and freed here,
    and every activation judged before the change finds the row changed and starts again
    under the new tier."""
    now = now or datetime.now(UTC)
    row = await _locked(session, None, license_id)
    _refuse_revoked(row)
    if data.product is not None:
        product_code = await session.scalar(
            select(Product.code).where(Product.id == row.product_id)
        )
        if data.product != product_code:
            raise InvalidInput(
                "A license cannot move to another product; issue a new license",
                code="PRODUCT_CHANGE_UNSUPPORTED",
            )
    tier = await session.scalar(
        select(Tier).where(Tier.product_id == row.product_id, Tier.code == data.tier)
    )
    if tier is None:
        raise InvalidInput(f"The product has no tier {data.tier!r}", code="UNKNOWN_TIER")
    previous = await session.scalar(select(Tier.code).where(Tier.id == row.tier_id))
    if data.expires_at is not msgspec.UNSET:
        if data.expires_at is not None:
            check_datetime(data.expires_at, "expires_at")
        row.expires_at = data.expires_at
    if data.max_activations is not msgspec.UNSET:
        row.max_activations = data.max_activations
    if data.max_users is not msgspec.UNSET:
        if data.max_users is not None:
            _refuse_max_users_unless_user_tier(tier)
        row.max_users = data.max_users
    await _refuse_users_over(session, row, tier, row.max_users)
    row.tier_id = tier.id
    seats = rules.effective_max_activations(tier.max_activations, row.max_activations)
    live = (
        await session.scalars(
            select(Activation)
            .where(
                Activation.license_id == row.id,
                Activation.organization_id == row.organization_id,
                text(rules.live_seat_sql("activations", ":grace", ":now")).bindparams(
                    grace=tier.lease_grace_days, now=now
                ),
            )
            .order_by(Activation.last_check_in_at, Activation.id)
            .with_for_update()
        )
    ).all()
    excess = len(live) - seats
    released: list[str] = []
    if excess > 0:
        if data.release != "least_recently_seen":
            raise Conflict(
                f"{len(live)} machine(s) hold a seat and tier {data.tier!r} allows {seats}; "
                f"deactivate {excess}, or pass release: least_recently_seen",
                code="SEATS_IN_USE",
                activations_count=len(live),
                max_activations=seats,
                excess=excess,
            )
        for activation in live[:excess]:
            activation.deactivated_at = now
            activation.deactivation_reason = PLAN_CHANGE
            released.append(str(activation.id))
        await session.flush()
        for activation_id in released:
            await record(
                session,
                actor,
                "activation.deactivate",
                "activation",
                activation_id,
                organization_id=row.organization_id,
                data={"license_id": str(row.id), "reason": PLAN_CHANGE},
            )
    return await _changed(
        session,
        actor,
        row,
        "license.change_tier",
        now,
        {"previous_tier": previous, "tier": tier.code, "released": released},
    )


PLAN_CHANGE = "plan_change"
"""``deactivation_reason`` of a seat freed by a change of plan with fewer seats."""


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
) -> LicenseToken:
    """A signed ``license+jwt`` for offline use without machine binding, valid until
    min(license expiry, now + lifetime), with the trust material of the key that signed it
    (certificate, revocation list, root endorsements: one keyring snapshot, no query while
    the keyring is fresh). Refused (403) unless the license is usable now.

    Time is counted in whole seconds, as tokens count it (and as the licensing API does): a
    license that expires within the current second is already expired here."""
    now = rules.whole_second(now or datetime.now(UTC))
    row = await _license_row(session, principal, license_id, now)
    terms = rules.LicenseTerms.from_row(row._mapping)
    terms.refuse_unless_usable(now)
    signer, trust = await keyring.signer_and_trust()
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
    return LicenseToken(
        token=issued.token,
        expires_at=issued.expires_at,
        key_certificate=trust.key_certificate,
        key_revocations=trust.key_revocations,
        root_endorsements=list(trust.root_endorsements),
    )


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

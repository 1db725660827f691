"""The catalog: products and their tiers (platform-wide, managed by admins)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import Principal
from server.errors import Conflict, InvalidInput, NotFound
from server.license_rules import meter_limit
from server.models import Product, Tier
from server.pagination import Page, paginate
from server.products.schemas import (
    MeterSpec,
    ProductCreate,
    ProductUpdate,
    TierCreate,
    TierUpdate,
    changes,
)


async def create_product(session: AsyncSession, actor: Principal, data: ProductCreate) -> Product:
    # ON CONFLICT DO NOTHING: a duplicate (even a concurrent one) is a clean 409, not an
    # aborted transaction.
    product_id = await session.scalar(
        insert(Product)
        .values(code=data.code, name=data.name)
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(Product.id)
    )
    if product_id is None:
        raise Conflict(f"A product with code {data.code!r} exists", code="PRODUCT_EXISTS")
    await record(session, actor, "product.create", "product", product_id, data={"code": data.code})
    return await get_product(session, data.code)


async def get_product(session: AsyncSession, code: str) -> Product:
    product = await session.scalar(select(Product).where(Product.code == code))
    if product is None:
        raise NotFound(f"No product {code!r}", code="PRODUCT_NOT_FOUND")
    return product


async def list_products(session: AsyncSession, *, limit: int, cursor: str | None) -> Page[Product]:
    return await paginate(session, select(Product), Product.created_at, Product.id, limit, cursor)


async def update_product(
    session: AsyncSession, actor: Principal, code: str, data: ProductUpdate
) -> Product:
    product = await _locked_product(session, code)
    fields = changes(data)
    if fields:
        for name, value in fields.items():
            setattr(product, name, value)
        product.updated_at = datetime.now(UTC)
        await session.flush()
        await record(
            session, actor, "product.update", "product", product.id, data={"fields": sorted(fields)}
        )
    return product


async def _locked_product(session: AsyncSession, code: str) -> Product:
    product = await session.scalar(select(Product).where(Product.code == code).with_for_update())
    if product is None:
        raise NotFound(f"No product {code!r}", code="PRODUCT_NOT_FOUND")
    return product


def _check_trial_settings(tier: Tier | TierCreate) -> None:
    """Self-serve trials need a trial tier with a duration (the trial's length)."""
    if tier.self_serve_trials and not (tier.is_trial and tier.duration_days is not None):
        raise InvalidInput(
            "self_serve_trials needs is_trial and a duration_days", code="TRIAL_TIER_INCOMPLETE"
        )


def _check_seat_settings(tier: Tier | TierCreate) -> None:
    """A ``user`` tier says how many users a license may have."""
    if tier.seat_kind == "user" and tier.max_users is None:
        raise InvalidInput(
            "max_users: required when seat_kind is 'user'", code="MAX_USERS_REQUIRED"
        )


async def _refuse_second_self_serve_tier(
    session: AsyncSession, product_id: uuid.UUID, tier_id: uuid.UUID | None
) -> None:
    """One tier per product offers keyless trials (the product row is locked by the caller,
    so two concurrent changes cannot both pass; a unique index is the backstop)."""
    query = select(Tier.code).where(Tier.product_id == product_id, Tier.self_serve_trials)
    if tier_id is not None:
        query = query.where(Tier.id != tier_id)
    other = await session.scalar(query.limit(1))
    if other is not None:
        raise Conflict(
            f"Tier {other!r} of this product already offers self-serve trials",
            code="SELF_SERVE_TRIAL_TIER_EXISTS",
        )


async def create_tier(
    session: AsyncSession, actor: Principal, product_code: str, data: TierCreate
) -> Tier:
    _check_trial_settings(data)
    _check_seat_settings(data)
    if data.self_serve_trials:
        product = await _locked_product(session, product_code)
        await _refuse_second_self_serve_tier(session, product.id, None)
    else:
        product = await get_product(session, product_code)
    tier_id = await session.scalar(
        insert(Tier)
        .values(
            product_id=product.id,
            code=data.code,
            name=data.name,
            features=_features_with_meters(data.features, data.meters, {}),
            meters=_stored_meters(data.meters),
            max_activations=data.max_activations,
            duration_days=data.duration_days,
            offline_lease_days=data.offline_lease_days,
            lease_grace_days=data.lease_grace_days,
            max_deactivations_per_day=data.max_deactivations_per_day,
            expiry_notice_days=data.expiry_notice_days,
            is_trial=data.is_trial,
            self_serve_trials=data.self_serve_trials,
            expiry_behavior=data.expiry_behavior,
            seat_kind=data.seat_kind,
            max_users=data.max_users,
            machines_per_user=data.machines_per_user,
        )
        .on_conflict_do_nothing(index_elements=["product_id", "code"])
        .returning(Tier.id)
    )
    if tier_id is None:
        raise Conflict(
            f"Product {product_code!r} already has a tier {data.code!r}", code="TIER_EXISTS"
        )
    await record(
        session,
        actor,
        "tier.create",
        "tier",
        tier_id,
        data={"product": product_code, "code": data.code},
    )
    return await get_tier(session, product_code, data.code)


async def get_tier(session: AsyncSession, product_code: str, tier_code: str) -> Tier:
    tier = await session.scalar(_tier_query(product_code, tier_code))
    if tier is None:
        raise NotFound(f"Product {product_code!r} has no tier {tier_code!r}", code="TIER_NOT_FOUND")
    return tier


async def list_tiers(
    session: AsyncSession, product_code: str, *, limit: int, cursor: str | None
) -> Page[Tier]:
    product = await get_product(session, product_code)
    query = select(Tier).where(Tier.product_id == product.id)
    return await paginate(session, query, Tier.created_at, Tier.id, limit, cursor)


async def update_tier(
    session: AsyncSession, actor: Principal, product_code: str, tier_code: str, data: TierUpdate
) -> Tier:
    """Tier changes apply to every license of the tier at its next validation."""
    fields = changes(data)
    if fields.get("self_serve_trials"):
        await _locked_product(session, product_code)
    tier = await session.scalar(_tier_query(product_code, tier_code).with_for_update(of=Tier))
    if tier is None:
        raise NotFound(f"Product {product_code!r} has no tier {tier_code!r}", code="TIER_NOT_FOUND")
    fields = _meter_fields(tier, fields)
    if fields:
        for name, value in fields.items():
            setattr(tier, name, value)
        _check_trial_settings(tier)
        _check_seat_settings(tier)
        if tier.self_serve_trials:
            await _refuse_second_self_serve_tier(session, tier.product_id, tier.id)
        tier.updated_at = datetime.now(UTC)
        await session.flush()
        await record(
            session,
            actor,
            "tier.update",
            "tier",
            tier.id,
            data={"product": product_code, "code": tier_code, "fields": sorted(changes(data))},
        )
    return tier


def _tier_query(product_code: str, tier_code: str):
    return (
        select(Tier)
        .join(Product, Product.id == Tier.product_id)
        .where(Product.code == product_code, Tier.code == tier_code)
    )


# --- usage meters ---------------------------------------------------------------------------
# A meter's limit is stored once, as the tier's feature of the meter's name (a license overrides
# it like any feature); ``tiers.meters`` keeps each meter's period.


def meters_of(tier: Tier) -> dict[str, MeterSpec]:
    """A tier's meters as the API shows them: period from ``meters``, limit from ``features``."""
    return {
        name: MeterSpec(limit=meter_limit(tier.features, name) or 0, period=spec.get("period"))
        for name, spec in (tier.meters or {}).items()
    }


def _stored_meters(meters: Mapping[str, MeterSpec]) -> dict[str, Any]:
    return {name: {"period": spec.period} for name, spec in meters.items()}


def _features_with_meters(
    given: Mapping[str, Any], meters: Mapping[str, MeterSpec], kept: Mapping[str, Any]
) -> dict[str, Any]:
    """``given`` features (plus ``kept`` ones not given) with each meter's limit; a feature
    given under a meter's name must be that limit."""
    features = {**kept, **given}
    for name, spec in meters.items():
        if name in given and (given[name] != spec.limit or isinstance(given[name], bool)):
            raise InvalidInput(
                f"Feature {name!r} is a meter: its value is the meter's limit ({spec.limit})",
                code="METER_FEATURE_CONFLICT",
            )
        features[name] = spec.limit
    return features


def _meter_fields(tier: Tier, fields: dict[str, Any]) -> dict[str, Any]:
    """A tier update's fields with its meters stored as such and their limits in the features.

    New ``meters`` replace the old ones (features that were only old meters' limits go); new
    ``features`` without a meter's name keep its limit, and one that names it sets it."""
    old = tier.meters or {}
    if "meters" in fields:
        meters: dict[str, MeterSpec] = fields["meters"]
        given = fields.get("features")
        kept = {k: v for k, v in tier.features.items() if k not in old} if given is None else {}
        features = _features_with_meters(given or {}, meters, kept)
        return {**fields, "features": features, "meters": _stored_meters(meters)}
    if "features" in fields and old:
        features = dict(fields["features"])
        for name in old:
            if name not in features:
                features[name] = tier.features.get(name, 0)
            elif meter_limit(features, name) is None:
                raise InvalidInput(
                    f"Feature {name!r} is a meter: its value must be a limit (an integer >= 0)",
                    code="METER_FEATURE_CONFLICT",
                )
        return {**fields, "features": features}
    return fields

"""The catalog: products and their tiers (platform-wide, managed by admins)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.service import record
from server.auth.principal import Principal
from server.errors import Conflict, NotFound
from server.models import Product, Tier
from server.pagination import Page, paginate
from server.products.schemas import (
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


async def create_tier(
    session: AsyncSession, actor: Principal, product_code: str, data: TierCreate
) -> Tier:
    product = await get_product(session, product_code)
    tier_id = await session.scalar(
        insert(Tier)
        .values(
            product_id=product.id,
            code=data.code,
            name=data.name,
            features=data.features,
            max_activations=data.max_activations,
            duration_days=data.duration_days,
            offline_lease_days=data.offline_lease_days,
            lease_grace_days=data.lease_grace_days,
            max_deactivations_per_day=data.max_deactivations_per_day,
            expiry_notice_days=data.expiry_notice_days,
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
    tier = await session.scalar(_tier_query(product_code, tier_code).with_for_update(of=Tier))
    if tier is None:
        raise NotFound(f"Product {product_code!r} has no tier {tier_code!r}", code="TIER_NOT_FOUND")
    fields = changes(data)
    if fields:
        for name, value in fields.items():
            setattr(tier, name, value)
        tier.updated_at = datetime.now(UTC)
        await session.flush()
        await record(
            session,
            actor,
            "tier.update",
            "tier",
            tier.id,
            data={"product": product_code, "code": tier_code, "fields": sorted(fields)},
        )
    return tier


def _tier_query(product_code: str, tier_code: str):
    return (
        select(Tier)
        .join(Product, Product.id == Tier.product_id)
        .where(Product.code == product_code, Tier.code == tier_code)
    )

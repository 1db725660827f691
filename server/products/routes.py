"""Admin API for the catalog: products and their tiers."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import Provide
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.principal import Principal, allow, provide_principal
from server.models import Product, Tier
from server.pagination import Cursor, Limit, PageOf
from server.problems import problem_responses
from server.products import service
from server.products.schemas import (
    ProductCreate,
    ProductRead,
    ProductUpdate,
    TierCreate,
    TierRead,
    TierUpdate,
)
from server.validation import query_text

ProductCode = Annotated[str, query_text(64)]
TierCode = Annotated[str, query_text(64)]

_read = allow(scope="products:read")
_write = allow(scope="products:write")


def _product(row: Product) -> ProductRead:
    return ProductRead(**{f: getattr(row, f) for f in ProductRead.__struct_fields__})


def _tier(product_code: str, row: Tier) -> TierRead:
    fields = {f: getattr(row, f) for f in TierRead.__struct_fields__ if f != "product"}
    fields["meters"] = service.meters_of(row)
    return TierRead(product=product_code, **fields)


class ProductController(Controller):
    """Products and tiers are platform-wide and admin-only (API keys with ``products:*``).

    Customers see a license's product, tier and effective features on the license itself,
    and products read their features through the public licensing API.
    """

    path = "/products"
    tags = ["products"]
    security = [{"bearer": []}]
    dependencies = {"principal": Provide(provide_principal, sync_to_thread=False)}

    @post(
        "/",
        guards=[_write],
        summary="Create a product",
        description="`code` is a lowercase slug, unique across the catalog (409 PRODUCT_EXISTS).",
        responses=problem_responses(400, 401, 403, 409, 422),
    )
    async def create_product(
        self, session: AsyncSession, principal: Principal, data: ProductCreate
    ) -> ProductRead:
        return _product(await service.create_product(session, principal, data))

    @get(
        "/",
        guards=[_read],
        summary="List products",
        responses=problem_responses(401, 403, 422),
    )
    async def list_products(
        self, session: AsyncSession, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[ProductRead]:
        page = await service.list_products(session, limit=limit, cursor=cursor)
        return PageOf(items=[_product(p) for p in page.items], next_cursor=page.next_cursor)

    @get(
        "/{code:str}",
        guards=[_read],
        summary="Get a product",
        responses=problem_responses(401, 403, 404),
    )
    async def get_product(self, session: AsyncSession, code: ProductCode) -> ProductRead:
        return _product(await service.get_product(session, code))

    @patch(
        "/{code:str}",
        guards=[_write],
        summary="Rename a product",
        description="The code is permanent (licenses and tokens carry it); only the name changes.",
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def update_product(
        self, session: AsyncSession, principal: Principal, code: ProductCode, data: ProductUpdate
    ) -> ProductRead:
        return _product(await service.update_product(session, principal, code, data))

    @post(
        "/{code:str}/tiers",
        guards=[_write],
        summary="Add a tier to a product",
        description=(
            "A tier sets the defaults of the licenses issued on it: features, seats "
            "(`max_activations`), term (`duration_days`, null = perpetual), the offline lease "
            "of an activation, the grace after a lease runs out before its seat is freed, and "
            "how many machines may be deactivated per day."
        ),
        responses=problem_responses(400, 401, 403, 404, 409, 422),
    )
    async def create_tier(
        self, session: AsyncSession, principal: Principal, code: ProductCode, data: TierCreate
    ) -> TierRead:
        return _tier(code, await service.create_tier(session, principal, code, data))

    @get(
        "/{code:str}/tiers",
        guards=[_read],
        summary="List a product's tiers",
        responses=problem_responses(401, 403, 404, 422),
    )
    async def list_tiers(
        self, session: AsyncSession, code: ProductCode, limit: Limit = 50, cursor: Cursor = None
    ) -> PageOf[TierRead]:
        page = await service.list_tiers(session, code, limit=limit, cursor=cursor)
        return PageOf(items=[_tier(code, t) for t in page.items], next_cursor=page.next_cursor)

    @get(
        "/{code:str}/tiers/{tier_code:str}",
        guards=[_read],
        summary="Get a tier",
        responses=problem_responses(401, 403, 404),
    )
    async def get_tier(
        self, session: AsyncSession, code: ProductCode, tier_code: TierCode
    ) -> TierRead:
        return _tier(code, await service.get_tier(session, code, tier_code))

    @patch(
        "/{code:str}/tiers/{tier_code:str}",
        guards=[_write],
        summary="Change a tier",
        description="Changes apply to every license of the tier (their own overrides still win).",
        responses=problem_responses(400, 401, 403, 404, 422),
    )
    async def update_tier(
        self,
        session: AsyncSession,
        principal: Principal,
        code: ProductCode,
        tier_code: TierCode,
        data: TierUpdate,
    ) -> TierRead:
        return _tier(code, await service.update_tier(session, principal, code, tier_code, data))

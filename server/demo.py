"""``licentia demo seed``: a demo catalog (five products, four tiers each) and an organization."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.license_rules import DEFAULT_MAX_DEACTIVATIONS_PER_DAY
from server.models import Organization, Product, Tier

DEMO_ORGANIZATION = "Demo Organization"

PRODUCTS: dict[str, tuple[str, dict[str, Any]]] = {
    "local_cli": (
        "Local CLI",
        {"offline_mode": True, "plugins": True, "max_projects": 3, "support": "community"},
    ),
    "cloud_ide": (
        "Cloud IDE",
        {"collaboration": False, "ai_assist": False, "max_workspaces": 1, "support": "community"},
    ),
    "workflow_app": (
        "Workflow App",
        {"automations": 5, "scheduler": False, "sso": False, "support": "community"},
    ),
    "agent_marketplace": (
        "Agent Marketplace",
        {
            "publish_agents": False,
            "private_listings": False,
            "max_installs": 3,
            "support": "community",
        },
    ),
    "advanced_analytics": (
        "Advanced Analytics",
        {"dashboards": 3, "export": False, "retention_days": 30, "support": "community"},
    ),
}

# Each tier overlays the product's base features. "trial" is enterprise-like but short.
TIER_OVERLAYS: dict[str, dict[str, Any]] = {
    "free": {},
    "pro": {
        "plugins": True,
        "max_projects": 50,
        "collaboration": True,
        "ai_assist": True,
        "max_workspaces": 10,
        "automations": 100,
        "scheduler": True,
        "publish_agents": True,
        "max_installs": 50,
        "dashboards": 50,
        "export": True,
        "retention_days": 365,
        "support": "email",
    },
    "enterprise": {
        "plugins": True,
        "max_projects": 10_000,
        "collaboration": True,
        "ai_assist": True,
        "max_workspaces": 1_000,
        "automations": 100_000,
        "scheduler": True,
        "sso": True,
        "publish_agents": True,
        "private_listings": True,
        "max_installs": 100_000,
        "dashboards": 10_000,
        "export": True,
        "retention_days": 3650,
        "audit_log": True,
        "support": "priority",
    },
    "trial": {
        "plugins": True,
        "max_projects": 10,
        "collaboration": True,
        "ai_assist": True,
        "max_workspaces": 3,
        "automations": 50,
        "scheduler": True,
        "publish_agents": True,
        "max_installs": 10,
        "dashboards": 10,
        "export": True,
        "retention_days": 14,
        "support": "email",
    },
}

# (name, max_activations, duration_days, offline_lease_days)
TIERS: dict[str, tuple[str, int, int | None, int]] = {
    "free": ("Free", 1, None, 3),
    "pro": ("Pro", 3, 365, 14),
    "enterprise": ("Enterprise", 50, 365, 30),
    "trial": ("Trial", 2, 14, 2),
}


def tier_features(product_code: str, tier_code: str) -> dict[str, Any]:
    base = PRODUCTS[product_code][1]
    overlay = TIER_OVERLAYS[tier_code]
    return {**base, **{k: v for k, v in overlay.items() if k in base or k in ("audit_log",)}}


async def seed(session: AsyncSession) -> str:
    """Idempotent: running it twice adds nothing the second time."""
    for code, (name, _) in PRODUCTS.items():
        await session.execute(
            insert(Product)
            .values(code=code, name=name)
            .on_conflict_do_nothing(index_elements=["code"])
        )
    products = {p.code: p.id for p in await session.scalars(select(Product))}
    for product_code in PRODUCTS:
        for tier_code, (name, seats, days, lease) in TIERS.items():
            await session.execute(
                insert(Tier)
                .values(
                    product_id=products[product_code],
                    code=tier_code,
                    name=name,
                    features=tier_features(product_code, tier_code),
                    max_activations=seats,
                    duration_days=days,
                    offline_lease_days=lease,
                    lease_grace_days=7,
                    max_deactivations_per_day=DEFAULT_MAX_DEACTIVATIONS_PER_DAY,
                )
                .on_conflict_do_nothing(index_elements=["product_id", "code"])
            )
    organization = await session.scalar(
        select(Organization).where(Organization.name == DEMO_ORGANIZATION)
    )
    if organization is None:
        organization = Organization(name=DEMO_ORGANIZATION)
        session.add(organization)
        await session.flush()
    return (
        f"demo catalog: {len(PRODUCTS)} products x {len(TIERS)} tiers; "
        f"organization {organization.name!r} id={organization.id}"
    )

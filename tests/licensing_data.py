"""Catalogue, organization and license rows made directly in the database (not via the API).

Shared by the licensing API tests and the LicenseClient's live tests; import the fixtures
into a conftest or test module to use them."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from support import TestDatabase, run

from server.license_admin.facts import new_license_key
from server.settings import Settings


@dataclass(frozen=True)
class Made:
    key: str
    id: uuid.UUID
    organization_id: uuid.UUID
    product: str
    tier: str


MakeLicense = Callable[..., Made]


@pytest.fixture
def make_license(settings: Settings) -> MakeLicense:
    """``make_license(product=..., tier=..., max_activations=..., ...)`` -> Made."""
    from sqlalchemy import text

    from server.cli_support import admin_session

    def factory(
        *,
        product: str = "local_cli",
        tier: str = "pro",
        max_activations: int = 5,
        license_max_activations: int | None = None,
        status: str = "active",
        expires_at: datetime | None = None,
        starts_at: datetime | None = None,
        tier_features: dict[str, Any] | None = None,
        features: dict[str, Any] | None = None,
        offline_lease_days: int = 7,
        lease_grace_days: int = 7,
        max_deactivations_per_day: int = 50,
        organization_id: uuid.UUID | None = None,
        expiry_behavior: str = "restrict",
        is_trial: bool = False,
        self_serve_trials: bool = False,
        duration_days: int | None = None,
    ) -> Made:
        key, prefix, key_hash = new_license_key()

        async def work() -> Made:
            import json

            async with admin_session(settings) as session:
                org = organization_id
                if org is None:
                    org = (
                        await session.execute(
                            text("INSERT INTO organizations (name) VALUES ('Acme') RETURNING id")
                        )
                    ).scalar_one()
                product_id = (
                    await session.execute(
                        text(
                            "INSERT INTO products (code, name) VALUES (:c, :c) "
                            "ON CONFLICT (code) DO UPDATE SET name = excluded.name RETURNING id"
                        ),
                        {"c": product},
                    )
                ).scalar_one()
                tier_id = (
                    await session.execute(
                        text(
                            """
                            INSERT INTO tiers (product_id, code, name, features, max_activations,
                                offline_lease_days, lease_grace_days, max_deactivations_per_day,
                                expiry_behavior, is_trial, self_serve_trials, duration_days)
                            VALUES (:p, :c, :c, CAST(:f AS jsonb), :m, :lease, :grace, :deact,
                                    :behavior, :trial, :self_serve, :days)
                            ON CONFLICT (product_id, code) DO UPDATE SET
                                features = excluded.features,
                                max_activations = excluded.max_activations,
                                offline_lease_days = excluded.offline_lease_days,
                                lease_grace_days = excluded.lease_grace_days,
                                max_deactivations_per_day = excluded.max_deactivations_per_day,
                                expiry_behavior = excluded.expiry_behavior,
                                is_trial = excluded.is_trial,
                                self_serve_trials = excluded.self_serve_trials,
                                duration_days = excluded.duration_days
                            RETURNING id
                            """
                        ),
                        {
                            "p": product_id,
                            "c": tier,
                            "f": json.dumps(
                                tier_features
                                if tier_features is not None
                                else {"plugins": True, "max_projects": 50, "support": "email"}
                            ),
                            "m": max_activations,
                            "lease": offline_lease_days,
                            "grace": lease_grace_days,
                            "deact": max_deactivations_per_day,
                            "behavior": expiry_behavior,
                            "trial": is_trial,
                            "self_serve": self_serve_trials,
                            "days": duration_days,
                        },
                    )
                ).scalar_one()
                license_id = (
                    await session.execute(
                        text(
                            """
                            INSERT INTO licenses (organization_id, product_id, tier_id, key_hash,
                                key_prefix, status, starts_at, expires_at, max_activations,
                                features)
                            VALUES (:org, :p, :t, :h, :prefix, :status,
                                    coalesce(:starts, now()), :exp, :max, CAST(:f AS jsonb))
                            RETURNING id
                            """
                        ),
                        {
                            "org": org,
                            "p": product_id,
                            "t": tier_id,
                            "h": key_hash,
                            "prefix": prefix,
                            "status": status,
                            "starts": starts_at,
                            "exp": expires_at,
                            "max": license_max_activations,
                            "f": json.dumps(features or {}),
                        },
                    )
                ).scalar_one()
                return Made(key, license_id, org, product, tier)

        return run(work())

    return factory


class Sql:
    """Owner-connection SQL for assertions and for moving time (e.g. leases) in tests."""

    def __init__(self, database: TestDatabase) -> None:
        self.url = database.owner_url

    def all(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def one(self, query: str, *params: Any) -> Any:
        rows = self.all(query, *params)
        return rows[0][0] if rows else None

    def live(self, license_id: uuid.UUID) -> int:
        return self.one(
            "SELECT count(*) FROM activations WHERE license_id = %s AND deactivated_at IS NULL",
            license_id,
        )


@pytest.fixture
def sql(database: TestDatabase) -> Sql:
    return Sql(database)


def in_days(days: float) -> datetime:
    return datetime.now(UTC) + timedelta(days=days)

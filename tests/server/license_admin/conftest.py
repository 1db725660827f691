"""Organizations, users, a small catalog and activations for the license management tests
(made by tests/factories.py).

Rows the tests only need to exist are written straight to the database (as the schema
owner); everything under test goes through the HTTP API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import factories
import psycopg
import pytest
from factories import Tier
from litestar.testing import TestClient
from support import bearer

from server.settings import Settings

PRODUCT = factories.PRODUCT
GRACE_DAYS = 7
CATALOG = {
    "pro": Tier(
        max_activations=3,
        duration_days=365,
        features={"plugins": True, "max_projects": 50, "support": "email"},
        lease_grace_days=GRACE_DAYS,
        max_deactivations_per_day=2,
    ),
    "free": Tier(
        max_activations=1,
        features={"plugins": False, "max_projects": 3, "support": "community"},
        lease_grace_days=GRACE_DAYS,
        max_deactivations_per_day=2,
    ),
}


@pytest.fixture
def catalog(owner_db: psycopg.Connection) -> dict[str, uuid.UUID]:
    """Product ``local_cli`` with tiers ``pro`` (3 seats, 365 days) and ``free`` (perpetual)."""
    return factories.product(owner_db, PRODUCT, CATALOG, name="Local CLI").tiers


@pytest.fixture
def make_org(owner_db: psycopg.Connection) -> Callable[[str], uuid.UUID]:
    def make(name: str = "Acme") -> uuid.UUID:
        return factories.organization(owner_db, name)

    return make


@pytest.fixture
def user_headers(
    settings: Settings, owner_db: psycopg.Connection
) -> Callable[[uuid.UUID, str], dict[str, str]]:
    """Authorization headers of a (real) user with ``role`` in organization ``org``."""

    def make(org: uuid.UUID, role: str = "member") -> dict[str, str]:
        user_id = factories.user(owner_db, org, role)
        return factories.access_headers(settings, user_id, org, role)

    return make


@pytest.fixture
def issue(
    client: TestClient, admin_key: str, catalog: dict[str, uuid.UUID]
) -> Callable[..., dict[str, Any]]:
    """POST /licenses as an all-scopes admin; returns the 201 body."""
    admin = factories.AdminApi(client, bearer(admin_key))

    def make(org: uuid.UUID, tier: str = "pro", **body: Any) -> dict[str, Any]:
        return factories.license(admin, org, PRODUCT, tier, **body).body

    return make


@pytest.fixture
def add_activation(owner_db: psycopg.Connection) -> Callable[..., uuid.UUID]:
    """``add_activation(license_body, fingerprint_hash=..., lease_expires_at=...,
    deactivated_at=...)``: an activation row of a license issued by ``issue``."""

    def make(license_: dict[str, Any], **row: Any) -> uuid.UUID:
        return factories.activation(owner_db, license_, **row)

    return make

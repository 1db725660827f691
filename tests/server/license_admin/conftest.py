"""Organizations, users, a small catalog and activations for the license management tests.

Rows the tests only need to exist are written straight to the database (as the schema
owner); everything under test goes through the HTTP API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from support import TestDatabase, bearer

from keys.crypto import parse_kek
from server.auth.principal import access_token_secret, issue_access_token
from server.settings import Settings

CATALOG = {
    # tier: (max_activations, duration_days, features)
    "pro": (3, 365, {"plugins": True, "max_projects": 50, "support": "email"}),
    "free": (1, None, {"plugins": False, "max_projects": 3, "support": "community"}),
}
PRODUCT = "local_cli"
GRACE_DAYS = 7


@pytest.fixture
def owner_db(database: TestDatabase) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def catalog(owner_db: psycopg.Connection) -> dict[str, uuid.UUID]:
    """Product ``local_cli`` with tiers ``pro`` (3 seats, 365 days) and ``free`` (perpetual)."""
    product_id = owner_db.execute(
        "INSERT INTO products (code, name) VALUES (%s, 'Local CLI') RETURNING id", (PRODUCT,)
    ).fetchone()[0]
    tiers = {}
    for code, (seats, days, features) in CATALOG.items():
        tiers[code] = owner_db.execute(
            """INSERT INTO tiers (product_id, code, name, features, max_activations,
                   duration_days, offline_lease_days, lease_grace_days, max_deactivations_per_day)
               VALUES (%s, %s, %s, %s::jsonb, %s, %s, 7, %s, 2) RETURNING id""",
            (product_id, code, code.title(), json.dumps(features), seats, days, GRACE_DAYS),
        ).fetchone()[0]
    return tiers


@pytest.fixture
def make_org(owner_db: psycopg.Connection) -> Callable[[str], uuid.UUID]:
    def factory(name: str = "Acme") -> uuid.UUID:
        return owner_db.execute(
            "INSERT INTO organizations (name) VALUES (%s) RETURNING id", (name,)
        ).fetchone()[0]

    return factory


@pytest.fixture
def user_headers(
    settings: Settings, owner_db: psycopg.Connection
) -> Callable[[uuid.UUID, str], dict[str, str]]:
    """Authorization headers of a (real) user with ``role`` in organization ``org``."""
    secret = access_token_secret(parse_kek(settings.key_encryption_key or ""))

    def factory(org: uuid.UUID, role: str = "member") -> dict[str, str]:
        user_id = uuid.uuid4()
        owner_db.execute(
            "INSERT INTO users (id, organization_id, email, full_name, role, password_hash) "
            "VALUES (%s, %s, %s, 'Test User', %s, 'unused')",
            (user_id, org, f"{user_id}@example.com", role),
        )
        token = issue_access_token(
            secret,
            user_id=user_id,
            organization_id=org,
            role=role,
            ttl=3600,
            issuer=settings.issuer,
        )
        return bearer(token)

    return factory


@pytest.fixture
def issue(
    client: TestClient, admin_key: str, catalog: dict[str, uuid.UUID]
) -> Callable[..., dict[str, Any]]:
    """POST /licenses as an all-scopes admin; returns the 201 body."""

    def factory(org: uuid.UUID, tier: str = "pro", **body: Any) -> dict[str, Any]:
        response = client.post(
            "/api/v1/licenses",
            json={"organization_id": str(org), "product": PRODUCT, "tier": tier, **body},
            headers=bearer(admin_key),
        )
        assert response.status_code == 201, response.text
        return response.json()

    return factory


@pytest.fixture
def add_activation(owner_db: psycopg.Connection) -> Callable[..., uuid.UUID]:
    def factory(
        license_: dict[str, Any],
        *,
        fingerprint_hash: str | None = None,
        lease_expires_at: datetime | None = None,
        deactivated_at: datetime | None = None,
    ) -> uuid.UUID:
        now = datetime.now(UTC)
        return owner_db.execute(
            """INSERT INTO activations (organization_id, license_id, fingerprint_hash, name,
                   platform, lease_expires_at, deactivated_at, deactivation_reason)
               VALUES (%s, %s, %s, 'laptop', 'linux', %s, %s, %s) RETURNING id""",
            (
                license_["organization_id"],
                license_["id"],
                fingerprint_hash or uuid.uuid4().hex,
                lease_expires_at or now + timedelta(days=7),
                deactivated_at,
                "user" if deactivated_at else None,
            ),
        ).fetchone()[0]

    return factory

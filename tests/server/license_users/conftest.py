"""Fixtures of the named-user seat tests: a product sold per named user, and an organization
that bought it (made by tests/factories.py; the people sign up and log in through the API)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import factories
import psycopg
import pytest
from licensing_data import sql  # noqa: F401
from litestar.testing import TestClient
from support import bearer

PRODUCT = "cloud_ide"
MAX_USERS = 2
MACHINES_PER_USER = 2


@dataclass(frozen=True)
class Team:
    """An organization (its owner signed up through the API) with a ``team`` license:
    ``MAX_USERS`` named users, ``MACHINES_PER_USER`` machines each."""

    client: TestClient
    admin: factories.AdminApi
    organization_id: uuid.UUID
    owner: dict[str, Any]
    license: factories.License
    product: str = PRODUCT
    max_users: int = MAX_USERS
    machines_per_user: int = MACHINES_PER_USER

    def member(self, role: str = "member") -> dict[str, Any]:
        """A new member of the organization, logged in (``headers`` carry their token)."""
        return factories.add_user(self.client, self.owner["headers"], role)

    @property
    def users_url(self) -> str:
        return f"/api/v1/licenses/{self.license.id}/users"


@pytest.fixture
def user_catalog(owner_db: psycopg.Connection) -> factories.Product:
    """``cloud_ide``: tier ``team`` (named users) and tier ``desk`` (machines)."""
    return factories.product(
        owner_db,
        PRODUCT,
        {
            "team": factories.Tier(
                max_activations=10,
                seat_kind="user",
                max_users=MAX_USERS,
                machines_per_user=MACHINES_PER_USER,
            ),
            "desk": factories.Tier(max_activations=3),
        },
    )


@pytest.fixture
def make_team(
    client: TestClient, admin_key: str, user_catalog: factories.Product, cheap_argon2: None
) -> Callable[..., Team]:
    admin = factories.AdminApi(client, bearer(admin_key))

    def make(tier: str = "team", **license_terms: Any) -> Team:
        owner = factories.signup(client, "Team Co")
        org = uuid.UUID(owner["organization"]["id"])
        lic = factories.license(admin, org, PRODUCT, tier, **license_terms)
        return Team(client, admin, org, owner, lic)

    return make

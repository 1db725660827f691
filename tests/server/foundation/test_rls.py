"""Row-level security at the database, connected as the runtime role."""

from __future__ import annotations

import uuid

import factories
import psycopg
import pytest
from support import TestDatabase

from server.license_rules import hash_license_key

TENANT_TABLES = ("organizations", "users", "licenses", "activations", "projects", "audit_events")


def _seed_two_tenants(owner_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """Insert one row of every tenant table for two organizations (as the owner)."""
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.platform_admin', 'on', true)")
        factories.product(conn, "rls_p", {"pro": factories.Tier(max_activations=3)})
        for org in (a, b):
            factories.organization(conn, f"org {org}", id=org)
            factories.user(conn, org, "owner", email=f"{org}@example.com")
            made = factories.license(conn, org, "rls_p", key=_key(org))
            factories.activation(conn, made, fingerprint_hash="fp")
            # Projects and audit events have no factory: they are rows of their own here.
            conn.execute("INSERT INTO projects (organization_id, name) VALUES (%s, 'p')", (org,))
            conn.execute(
                "INSERT INTO audit_events (organization_id, actor_type, action) "
                "VALUES (%s, 'system', 'test')",
                (org,),
            )
    return a, b


def _key(org: uuid.UUID) -> str:
    return f"LK-{org}"


def _org_column(table: str) -> str:
    return "id" if table == "organizations" else "organization_id"


@pytest.fixture
def tenants(database: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    return _seed_two_tenants(database.owner_url)


def test_runtime_role_sees_only_its_tenant(database: TestDatabase, tenants) -> None:
    a, _ = tenants
    with psycopg.connect(database.app_url) as conn:
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (str(a),))
        for table in TENANT_TABLES:
            orgs = {r[0] for r in conn.execute(f"SELECT {_org_column(table)} FROM {table}")}
            assert orgs == {a}, table


def test_runtime_role_without_tenant_sees_nothing(database: TestDatabase, tenants) -> None:
    with psycopg.connect(database.app_url) as conn:
        for table in TENANT_TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
    with psycopg.connect(database.app_url, autocommit=True) as conn:
        # transaction-local: a setting made in one transaction is gone in the next
        conn.execute("BEGIN")
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (str(tenants[0]),))
        conn.execute("COMMIT")
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_runtime_role_cannot_write_into_another_tenant(database: TestDatabase, tenants) -> None:
    a, b = tenants
    with psycopg.connect(database.app_url) as conn:
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (str(a),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO projects (organization_id, name) VALUES (%s, 'evil')", (b,))
    with psycopg.connect(database.app_url) as conn:
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (str(a),))
        updated = conn.execute(
            "UPDATE projects SET name = 'x' WHERE organization_id = %s", (b,)
        ).rowcount
        assert updated == 0


def test_runtime_role_cannot_read_around_the_lookups(database: TestDatabase, tenants) -> None:
    a, _ = tenants
    with psycopg.connect(database.app_url) as conn:
        org = conn.execute(
            "SELECT licentia_license_org(%s)", (hash_license_key(_key(a)),)
        ).fetchone()[0]
        assert org == a
        assert conn.execute("SELECT licentia_user_org(%s)", (f"{a}@EXAMPLE.com",)).fetchone() == (
            a,
        )
        assert conn.execute("SELECT count(*) FROM licenses").fetchone() == (0,)

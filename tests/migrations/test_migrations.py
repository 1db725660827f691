"""Migrations on a real database: upgrade head, downgrade base, upgrade head again; 0002
down to 0001 and back."""

from __future__ import annotations

import psycopg
from support import TestDatabase

from server.db.migrations import downgrade, upgrade
from server.settings import async_url

TENANT_TABLES = {
    "organizations",
    "users",
    "licenses",
    "activations",
    "projects",
    "audit_events",
    "refresh_tokens",
    "license_usage",  # 0008
    "license_users",  # 0009
}
ALL_TABLES = TENANT_TABLES | {
    "products",
    "tiers",
    "signing_keys",
    "api_keys",
    "idempotency_keys",
    "rate_limits",
    "root_keys",
    "key_certificates",
    "key_revocation_lists",
    "webhook_endpoints",
    "webhook_events",
    "webhook_deliveries",
    "webhook_sequences",
    "license_expiry_notices",
    "trials",
    "staff_accounts",
    "web_sessions",
    "validation_counts",
}
LOOKUPS = [
    ("licentia_license_org", True, False),
    ("licentia_refresh_token_org", True, False),
    ("licentia_user_org", True, False),
]


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def test_webhooks_down_to_0005_and_back(scratch_url: str) -> None:
    """0006 (the webhook tables, the outbox trigger, the tiers' notice days) goes and comes
    back cleanly, and audit rows can be written with it gone."""
    upgrade(async_url(scratch_url))
    downgrade(async_url(scratch_url), "0005")
    webhook_tables = {t for t in ALL_TABLES if t.startswith("webhook_")}
    console_tables = {"staff_accounts", "web_sessions", "validation_counts"}  # 0007, above it
    usage_tables = {"license_usage"}  # 0008, above it
    named_user_tables = {"license_users"}  # 0009, above it
    assert _tables(scratch_url) == (
        ALL_TABLES
        - webhook_tables
        - console_tables
        - usage_tables
        - named_user_tables
        - {"license_expiry_notices"}
    )
    with psycopg.connect(scratch_url) as conn:
        conn.execute("INSERT INTO audit_events (actor_type, action) VALUES ('system', 'x.y')")
    upgrade(async_url(scratch_url))
    assert _tables(scratch_url) == ALL_TABLES


def test_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    upgrade(async_url(scratch_url))
    assert _tables(scratch_url) == ALL_TABLES
    downgrade(async_url(scratch_url), "base")
    assert _tables(scratch_url) == set()
    with psycopg.connect(scratch_url) as conn:
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc WHERE proname LIKE 'licentia_%'"
        ).fetchone()
    assert functions == (0,)
    upgrade(async_url(scratch_url))
    assert _tables(scratch_url) == ALL_TABLES


def test_every_tenant_table_forces_row_level_security(database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = ANY(%s)",
            (sorted(TENANT_TABLES),),
        ).fetchall()
    assert {r[0] for r in rows} == TENANT_TABLES
    assert all(r[1] and r[2] for r in rows), rows


def test_lookups_are_security_definer_and_not_public(database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute(
            "SELECT proname, prosecdef, "
            "has_function_privilege('public', oid, 'EXECUTE') FROM pg_proc "
            "WHERE proname LIKE 'licentia_%'"
        ).fetchall()
    # Only the narrow look-ups bypass row-level security; the licensing functions run as the
    # caller (SECURITY INVOKER), so the policies apply to them. PUBLIC may execute none.
    assert sorted(row for row in rows if row[1]) == LOOKUPS
    assert not [row for row in rows if row[2]], rows


def _state(url: str) -> dict[str, object]:
    with psycopg.connect(url) as conn:
        return {
            "rls": conn.execute(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                "WHERE relname = 'refresh_tokens'"
            ).fetchone(),
            "functions": sorted(
                r[0]
                for r in conn.execute(
                    "SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE 'licentia_%'"
                )
            ),
            "email_keys": sorted(
                r[0]
                for r in conn.execute(
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'users'::regclass "
                    "AND contype = 'u'"
                )
            ),
            "generation": conn.execute(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_name = 'users' AND column_name = 'token_generation'"
            ).fetchone(),
        }


def test_0002_down_to_0001_and_up_again(scratch_url: str) -> None:
    upgrade(async_url(scratch_url), "0002")
    head = _state(scratch_url)
    assert head == {
        "rls": (True, True),
        "functions": [
            "licentia_license_org(bytea)",
            "licentia_refresh_token_org(bytea)",
            "licentia_user_org(text,uuid)",
        ],
        "email_keys": ["users_organization_email_key"],
        "generation": (1,),
    }
    downgrade(async_url(scratch_url), "0001")
    assert _state(scratch_url) == {
        "rls": (False, False),
        "functions": ["licentia_license_org(bytea)", "licentia_user_org(text)"],
        "email_keys": ["users_email_key"],
        "generation": (0,),
    }
    upgrade(async_url(scratch_url), "0002")
    assert _state(scratch_url) == head

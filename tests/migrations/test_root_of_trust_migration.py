"""Migration 0003 (the root of trust) on its own: up from its parent, down again leaving
exactly the parent's schema, up again; the runtime role gets what it has on signing_keys."""

from __future__ import annotations

import importlib.util

import psycopg
from support import APP_ROLE, TestDatabase

from server.db.migrations import MIGRATIONS_DIR, downgrade, upgrade
from server.settings import async_url

TABLES = {"root_keys", "key_certificates", "key_revocation_lists"}


def _migration():
    path = MIGRATIONS_DIR / "versions" / "0003_root_of_trust.py"
    spec = importlib.util.spec_from_file_location("migration_0003", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema(url: str) -> dict[str, set]:
    with psycopg.connect(url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        sequences = {
            r[0]
            for r in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
        }
        indexes = {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }
    return {"tables": tables, "sequences": sequences, "indexes": indexes}


def _privileges(url: str, table: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE grantee = %s AND table_name = %s",
            (APP_ROLE, table),
        ).fetchall()
    return {r[0] for r in rows}


def test_0003_upgrade_downgrade_upgrade(scratch_url: str) -> None:
    parent = _migration().down_revision
    assert _migration().revision == "0003"
    url = async_url(scratch_url)
    upgrade(url, parent)
    before = _schema(scratch_url)
    assert not TABLES & before["tables"]

    upgrade(url, "0003")
    after = _schema(scratch_url)
    assert after["tables"] - before["tables"] == TABLES
    assert "key_certificates_id_seq" in after["sequences"]
    assert "root_keys_one_active" in after["indexes"]
    signing = _privileges(scratch_url, "signing_keys")
    for table in TABLES:
        assert _privileges(scratch_url, table) == signing, table
    with psycopg.connect(scratch_url) as conn:
        rls = conn.execute(
            "SELECT bool_or(relrowsecurity) FROM pg_class WHERE relname = ANY(%s)",
            (sorted(TABLES),),
        ).fetchone()
    assert rls == (False,), "deployment tables, like signing_keys: no row-level security"

    downgrade(url, parent)
    assert _schema(scratch_url) == before
    upgrade(url, "0003")
    assert _schema(scratch_url) == after


def test_runtime_role_uses_the_sequence(database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        allowed = conn.execute(
            "SELECT has_sequence_privilege(%s, 'key_certificates_id_seq', 'USAGE')", (APP_ROLE,)
        ).fetchone()
    assert allowed == (True,)

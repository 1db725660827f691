"""The `licentia` command against the test database."""

from __future__ import annotations

import hashlib

import psycopg
from click.testing import CliRunner
from support import TestDatabase

from server.cli import main
from server.db.migrations import head_revision
from server.settings import Settings


def _env(settings: Settings) -> dict[str, str]:
    return {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_MIGRATION_DATABASE_URL": settings.migration_database_url or "",
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
        "LICENTIA_LOG_LEVEL": "WARNING",
    }


def test_admin_create_key_prints_the_key_alone_and_stores_its_hash(
    settings: Settings, database: TestDatabase
) -> None:
    result = CliRunner().invoke(
        main,
        ["admin", "create-key", "--name", "ci", "--scope", "licenses:read"],
        env=_env(settings),
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute("SELECT key_hash, scopes, prefix FROM api_keys").fetchone()
    assert bytes(row[0]) == hashlib.sha256(key.encode()).digest()
    assert row[1] == ["licenses:read"]
    assert key.startswith(row[2]) and len(row[2]) < len(key)


def test_admin_create_key_defaults_to_every_scope_and_rejects_unknown_ones(
    settings: Settings, database: TestDatabase
) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(main, ["admin", "create-key", "--name", "all"], env=_env(settings)).exit_code
        == 0
    )
    with psycopg.connect(database.owner_url) as conn:
        assert conn.execute("SELECT scopes FROM api_keys").fetchone() == (["*"],)
    bad = runner.invoke(
        main, ["admin", "create-key", "--name", "x", "--scope", "root"], env=_env(settings)
    )
    assert bad.exit_code != 0 and "UNKNOWN_SCOPE" in bad.output


def test_demo_seed_is_idempotent(settings: Settings, database: TestDatabase) -> None:
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["demo", "seed"], env=_env(settings))
        assert result.exit_code == 0, result.output
    with psycopg.connect(database.owner_url) as conn:
        products = {r[0] for r in conn.execute("SELECT code FROM products")}
        tiers = conn.execute(
            "SELECT p.code, t.code, t.features, t.max_activations FROM tiers t "
            "JOIN products p ON p.id = t.product_id"
        ).fetchall()
        organizations = conn.execute("SELECT count(*) FROM organizations").fetchone()
    assert products == {
        "local_cli",
        "cloud_ide",
        "workflow_app",
        "agent_marketplace",
        "advanced_analytics",
    }
    assert len(tiers) == 20
    assert {t[1] for t in tiers} == {"free", "pro", "enterprise", "trial"}
    assert organizations == (1,)
    by_tier = {(p, t): (f, m) for p, t, f, m in tiers}
    free, enterprise = by_tier[("local_cli", "free")], by_tier[("local_cli", "enterprise")]
    assert free[1] < enterprise[1]
    assert free[0]["max_projects"] < enterprise[0]["max_projects"]


def test_db_current_reports_head(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["db", "current"], env=_env(settings))
    assert result.exit_code == 0, result.output
    head = head_revision()
    assert result.output.startswith(f"{head} (head: {head})")


def test_embedded_can_be_disabled() -> None:
    result = CliRunner().invoke(
        main,
        ["db", "current"],
        env={"LICENTIA_DATABASE_URL": "", "LICENTIA_ALLOW_EMBEDDED": "false"},
    )
    assert result.exit_code != 0
    assert "LICENTIA_DATABASE_URL is required" in result.output


def test_db_cleanup_removes_only_expired_rows(settings: Settings, database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        conn.execute(
            "INSERT INTO rate_limits (bucket, window_start, hits) VALUES "
            "('old', now() - interval '3 days', 3), ('new', now(), 1)"
        )
        conn.execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, response_status, "
            "response_body, expires_at) VALUES "
            "('s', 'old', '\\x00', 201, '{}', now() - interval '1 minute'), "
            "('s', 'new', '\\x00', 201, '{}', now() + interval '1 hour')"
        )
    result = CliRunner().invoke(main, ["db", "cleanup"], env=_env(settings))
    assert result.exit_code == 0, result.output
    assert "rate_limit_windows=1" in result.output and "idempotency_keys=1" in result.output
    with psycopg.connect(database.owner_url) as conn:
        assert [r[0] for r in conn.execute("SELECT bucket FROM rate_limits")] == ["new"]
        assert [r[0] for r in conn.execute("SELECT key FROM idempotency_keys")] == ["new"]

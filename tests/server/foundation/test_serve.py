"""`licentia serve` as a real process: embedded database, restart, signals, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
from litestar.testing import TestClient
from support import TestDatabase, server_env, start_server, stop_server

from server.app import create_app
from server.db.roles import UnsafeRuntimeRole
from server.settings import Settings, async_url

REPO = Path(__file__).resolve().parents[3]


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _embedded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")} | {
        "LICENTIA_LOG_JSON": "true"
    }


def test_serve_embedded_end_to_end_survives_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = _embedded_env()
    first = start_server(env, tmp_path / "first.log", data_dir=data_dir, timeout=120)
    try:
        first_log = first.log()
        assert "First start: an admin API key was created" in first_log
        assert "LICENTIA_ISSUER" not in first_log, "embedded (development): no issuer warning"
        # stdout is a log file, not a terminal: the key is in a private file, not the log
        first_key = (data_dir / "first-admin-key").read_text().strip()
        assert first_key.startswith("lic_admin_") and first_key not in first_log
        assert (data_dir / "first-admin-key").stat().st_mode & 0o077 == 0
        created = _cli(["admin", "create-key", "--name", "ci", "--data-dir", str(data_dir)], env)
        assert created.returncode == 0, created.stderr
        key = created.stdout.strip()
        assert key.startswith("lic_admin_") and "\n" not in key
        response = httpx.get(
            first.base_url + "/api/v1/api-keys",
            headers={"Authorization": f"Bearer {key}", "X-Request-ID": "e2e-request-1"},
        )
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "e2e-request-1"
    finally:
        assert stop_server(first) == 0
    access = [json.loads(line) for line in first.log().splitlines() if line.startswith("{")]
    assert any(e.get("request_id") == "e2e-request-1" and e.get("status") == 200 for e in access)
    assert key not in first.log()
    assert (data_dir / "key-encryption-key").stat().st_mode & 0o077 == 0
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    assert not pid_file.exists(), "the embedded database must stop with the server"

    second = start_server(env, tmp_path / "second.log", data_dir=data_dir, timeout=120)
    try:
        assert "First start" not in second.log()
        response = httpx.get(
            second.base_url + "/api/v1/api-keys", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200
        assert any(item["name"] == "ci" for item in response.json()["items"])
        by_first_key = httpx.get(
            second.base_url + "/api/v1/api-keys", headers={"Authorization": f"Bearer {first_key}"}
        )
        assert by_first_key.status_code == 200
    finally:
        assert stop_server(second) == 0


def _startup_error(settings: Settings) -> BaseException:
    """The error that stops the app's start-up (anyio may wrap it in an exception group)."""
    try:
        with TestClient(create_app(settings)):
            pass
    except BaseException as exc:
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        return exc
    raise AssertionError("the app started")


def test_startup_refuses_a_superuser_runtime_role(
    settings: Settings, database: TestDatabase
) -> None:
    unsafe = Settings(
        database_url=async_url(database.owner_url),
        key_encryption_key=settings.key_encryption_key,
    )
    error = _startup_error(unsafe)
    assert isinstance(error, UnsafeRuntimeRole)
    assert "superuser" in str(error)


def test_startup_refuses_a_bypassrls_role(settings: Settings, database: TestDatabase) -> None:
    with psycopg.connect(database.admin_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS licentia_bypass")
        conn.execute("CREATE ROLE licentia_bypass LOGIN BYPASSRLS PASSWORD 'bypass-secret'")
    try:
        url = database.app_url.replace(
            "licentia_app:licentia-test-password", "licentia_bypass:bypass-secret"
        )
        unsafe = Settings(
            database_url=async_url(url), key_encryption_key=settings.key_encryption_key
        )
        error = _startup_error(unsafe)
        assert isinstance(error, UnsafeRuntimeRole)
        assert "BYPASSRLS" in str(error)
        assert "superuser" not in str(error)
    finally:
        with psycopg.connect(database.admin_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS licentia_bypass")


def test_serve_process_refuses_an_unsafe_role(
    settings: Settings, database: TestDatabase, tmp_path: Path
) -> None:
    env = server_env(settings, LICENTIA_DATABASE_URL=database.owner_url)
    with pytest.raises(RuntimeError, match="Refusing to start"):
        start_server(env, tmp_path / "refused.log", timeout=60)


def test_serve_refuses_a_wrong_key_encryption_key(
    settings: Settings, signing_key: str, tmp_path: Path
) -> None:
    from keys.crypto import new_kek_text

    env = server_env(settings, LICENTIA_KEY_ENCRYPTION_KEY=new_kek_text())
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        start_server(env, tmp_path / "wrong-kek.log", timeout=60)


def test_serve_warns_when_an_external_database_keeps_the_default_issuer(
    live_server_factory,
) -> None:
    default = live_server_factory()  # server_env: an external database, no LICENTIA_ISSUER
    lines = default.log().splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    warnings = [e for e in logged if "LICENTIA_ISSUER is still the default" in json.dumps(e)]
    assert len(warnings) == 1, default.log()
    assert "WARN" in json.dumps(warnings[0]).upper()
    stderr = [line for line in lines if line.startswith("warning: LICENTIA_ISSUER")]
    assert len(stderr) == 1 and "before shipping" in stderr[0], default.log()

    chosen = live_server_factory(LICENTIA_ISSUER="https://licensing.example.com")
    assert "LICENTIA_ISSUER" not in chosen.log()

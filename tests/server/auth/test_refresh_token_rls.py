"""Refresh tokens are a tenant table: row-level security isolates them like the others, and
the one question asked before the tenant is known (which organization holds this token
hash) goes through a SECURITY DEFINER function that answers only that."""

from __future__ import annotations

import hashlib
import uuid

import factories
import psycopg
import pytest
from factories import API, signup
from litestar.testing import TestClient
from support import TestDatabase, run

from server.maintenance import purge_expired
from server.settings import Settings


def _seed(owner_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(owner_url) as conn:
        conn.execute("SELECT set_config('app.platform_admin', 'on', true)")
        for org in (a, b):
            user = factories.user(conn, factories.organization(conn, "o", id=org), "owner")
            # The table under test: its row is written here, as the rows it is about.
            conn.execute(
                "INSERT INTO refresh_tokens (user_id, organization_id, token_hash, family_id, "
                "expires_at) VALUES (%s, %s, %s, %s, now() + interval '1 day')",
                (user, org, hashlib.sha256(org.bytes).digest(), uuid.uuid4()),
            )
    return a, b


@pytest.fixture
def tenants(database: TestDatabase) -> tuple[uuid.UUID, uuid.UUID]:
    return _seed(database.owner_url)


def test_refresh_tokens_force_row_level_security(database: TestDatabase) -> None:
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = 'refresh_tokens'"
        ).fetchone()
    assert row == (True, True)


def test_runtime_role_sees_and_writes_only_its_tenants_tokens(
    database: TestDatabase, tenants
) -> None:
    a, b = tenants
    with psycopg.connect(database.app_url) as conn:
        assert conn.execute("SELECT count(*) FROM refresh_tokens").fetchone() == (0,)
    with psycopg.connect(database.app_url) as conn:
        conn.execute("SELECT set_config('app.organization_id', %s, true)", (str(a),))
        orgs = {r[0] for r in conn.execute("SELECT organization_id FROM refresh_tokens")}
        assert orgs == {a}
        revoked = conn.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE organization_id = %s", (b,)
        ).rowcount
        assert revoked == 0
        deleted = conn.execute("DELETE FROM refresh_tokens WHERE organization_id = %s", (b,))
        assert deleted.rowcount == 0
        b_user = uuid.uuid4()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO refresh_tokens (user_id, organization_id, token_hash, family_id, "
                "expires_at) VALUES (%s, %s, 'x', %s, now())",
                (b_user, b, uuid.uuid4()),
            )


def test_the_token_lookup_answers_only_the_organization(database: TestDatabase, tenants) -> None:
    a, b = tenants
    with psycopg.connect(database.app_url) as conn:
        for org in (a, b):
            found = conn.execute(
                "SELECT licentia_refresh_token_org(%s)", (hashlib.sha256(org.bytes).digest(),)
            ).fetchone()
            assert found == (org,)
        assert conn.execute(
            "SELECT licentia_refresh_token_org(%s)", (b"\x00" * 32,)
        ).fetchone() == (None,)
        # ... and no way around the policy.
        assert conn.execute("SELECT count(*) FROM refresh_tokens").fetchone() == (0,)
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute(
            "SELECT prosecdef, has_function_privilege('public', oid, 'EXECUTE'), "
            "pg_get_function_result(oid) FROM pg_proc WHERE proname = 'licentia_refresh_token_org'"
        ).fetchone()
    assert row == (True, False, "uuid")


@pytest.mark.usefixtures("cheap_argon2")
def test_rotation_logout_and_reuse_detection_work_under_rls(client: TestClient) -> None:
    first = signup(client)["refresh_token"]
    second = client.post(f"{API}/auth/refresh", json={"refresh_token": first})
    assert second.status_code == 200, second.text
    reused = client.post(f"{API}/auth/refresh", json={"refresh_token": first})
    assert reused.json()["code"] == "REFRESH_TOKEN_REUSED"
    third = signup(client)["refresh_token"]
    assert client.post(f"{API}/auth/logout", json={"refresh_token": third}).status_code == 204
    gone = client.post(f"{API}/auth/refresh", json={"refresh_token": third})
    assert gone.json()["code"] == "INVALID_REFRESH_TOKEN"


def test_housekeeping_still_purges_expired_tokens_of_every_tenant(
    database: TestDatabase, tenants, settings: Settings
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    with psycopg.connect(database.owner_url) as conn:
        conn.execute("SELECT set_config('app.platform_admin', 'on', true)")
        conn.execute("UPDATE refresh_tokens SET expires_at = now() - interval '2 days'")

    async def work() -> int:
        engine = create_async_engine(settings.database_url)  # the runtime role
        try:
            return (await purge_expired(engine)).refresh_tokens
        finally:
            await engine.dispose()

    assert run(work()) == 2

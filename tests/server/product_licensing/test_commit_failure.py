"""The licensing routes' own transaction: a commit that fails never hands out a token."""

from __future__ import annotations

import psycopg
from litestar.testing import TestClient
from support import TestDatabase

API = "/api/v1/licenses"


def test_failed_commit_of_an_activation_is_5xx_without_a_token(
    client: TestClient, database: TestDatabase, sql, make_license
) -> None:
    lic = make_license(max_activations=2)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'commit refused by test'; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON activations "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit()"
        )
    try:
        response = client.post(
            f"{API}/activate",
            json={"license_key": lic.key, "product": "local_cli", "fingerprint": "m1"},
        )
    finally:
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER test_fail_commit ON activations")
            conn.execute("DROP FUNCTION test_fail_commit()")
    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "token" not in response.json() and "eyJ" not in response.text
    assert sql.all("SELECT id FROM activations") == []
    assert sql.all("SELECT id FROM audit_events WHERE action = 'activation.create'") == []
    # and the seat is still free: the same machine activates normally afterwards
    retry = client.post(
        f"{API}/activate",
        json={"license_key": lic.key, "product": "local_cli", "fingerprint": "m1"},
    )
    assert retry.status_code == 201, retry.text

"""Every error is an RFC 9457 problem with a stable code; request ids are echoed."""

from __future__ import annotations

import psycopg
from litestar.testing import TestClient
from support import TestDatabase, assert_problem, bearer

PROBLEM = "application/problem+json"


def test_unknown_route_is_404_problem(client: TestClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "NOT_FOUND")


def test_wrong_method_is_405_problem(client: TestClient) -> None:
    assert_problem(client.delete("/health/live"), 405, "METHOD_NOT_ALLOWED")


def test_malformed_json_is_400(client: TestClient, admin_key: str) -> None:
    response = client.post(
        "/api/v1/api-keys",
        content=b'{"name": "x",',
        headers={**bearer(admin_key), "content-type": "application/json"},
    )
    assert_problem(response, 400, "MALFORMED_JSON")


def test_schema_violation_is_422_naming_the_field(client: TestClient, admin_key: str) -> None:
    response = client.post("/api/v1/api-keys", json={"name": 12}, headers=bearer(admin_key))
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert "name" in body["detail"]
    response = client.post("/api/v1/api-keys", json={}, headers=bearer(admin_key))
    assert "name" in assert_problem(response, 422, "VALIDATION_ERROR")["detail"]


def test_body_over_64_kib_is_413(client: TestClient, admin_key: str) -> None:
    big = {"name": "x" * (65 * 1024)}
    response = client.post("/api/v1/api-keys", json=big, headers=bearer(admin_key))
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


def test_missing_and_bad_credentials_are_401(client: TestClient) -> None:
    assert_problem(client.get("/api/v1/api-keys"), 401, "UNAUTHENTICATED")
    response = client.get("/api/v1/api-keys", headers=bearer("lic_admin_nope"))
    assert_problem(response, 401, "INVALID_API_KEY")
    response = client.get("/api/v1/api-keys", headers={"Authorization": "Basic abc"})
    assert_problem(response, 401, "INVALID_CREDENTIALS")


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    response = client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = client.get("/no/such/route").headers["x-request-id"]
    assert len(generated) == 32
    hostile = client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


def test_failed_commit_is_5xx_and_nothing_is_kept(
    client: TestClient, admin_key: str, database: TestDatabase
) -> None:
    """The handler succeeds, the commit fails: the client must not get the key it made."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'commit refused by test'; END $$"
        )
        conn.execute(
            "CREATE CONSTRAINT TRIGGER test_fail_commit AFTER INSERT ON api_keys "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit()"
        )
    try:
        response = client.post(
            "/api/v1/api-keys", json={"name": "doomed"}, headers=bearer(admin_key)
        )
    finally:
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER test_fail_commit ON api_keys")
            conn.execute("DROP FUNCTION test_fail_commit()")
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    text = response.text.lower()
    for leak in ("traceback", "insert", "commit refused", "sqlalchemy", "asyncpg", "lic_admin_"):
        assert leak not in text, leak
    assert "key" not in body
    with psycopg.connect(database.owner_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM api_keys")]
        audit = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'api_key.create' "
            "AND data->>'name' = 'doomed'"
        ).fetchone()
    assert "doomed" not in names
    assert audit == (0,)


def test_health_endpoints(client: TestClient, database: TestDatabase) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code == 200
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        conn.execute("UPDATE alembic_version SET version_num = '0000'")
    try:
        assert_problem(client.get("/health/ready"), 503, "SCHEMA_OUTDATED")
    finally:
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (head,))


def test_openapi_document_is_served(client: TestClient) -> None:
    document = client.get("/schema/openapi.json").json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "/health/live" in document["paths"]


def test_database_errors_never_log_statement_parameters(
    client: TestClient, admin_key: str, database: TestDatabase, caplog
) -> None:
    """A failing INSERT carries its parameters (here a key hash and a name); logs must not."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION test_fail_insert() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'insert refused by test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_fail_insert BEFORE INSERT ON api_keys "
            "FOR EACH ROW EXECUTE FUNCTION test_fail_insert()"
        )
    try:
        with caplog.at_level("INFO"):
            response = client.post(
                "/api/v1/api-keys",
                json={"name": "name-that-must-stay-private"},
                headers=bearer(admin_key),
            )
    finally:
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER test_fail_insert ON api_keys")
            conn.execute("DROP FUNCTION test_fail_insert()")
    assert response.status_code == 500
    assert "insert refused by test" in caplog.text  # the error itself is logged ...
    assert "name-that-must-stay-private" not in caplog.text  # ... its parameters are not

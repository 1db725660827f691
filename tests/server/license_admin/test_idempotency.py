"""POST /licenses with an Idempotency-Key: replay, reuse with another body, races."""

from __future__ import annotations

import asyncio
import uuid

from support import assert_problem, bearer, make_api_key

from server.auth.principal import Principal
from server.db.session import create_engine, create_sessionmaker, set_tenant
from server.license_admin import service
from server.license_admin.schemas import LicenseCreate


def _post(client, key, body, idem):
    return client.post(
        "/api/v1/licenses", json=body, headers={**bearer(key), "Idempotency-Key": idem}
    )


def test_same_key_same_body_replays_the_first_response(
    client, admin_key, catalog, make_org, owner_db
):
    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "pro"}
    first = _post(client, admin_key, body, "order-42")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # Same JSON, other key order and spacing: still the same request.
    second = client.post(
        "/api/v1/licenses",
        content=(
            '{ "tier": "pro", "product": "local_cli", '
            f'"organization_id": "{body["organization_id"]}" }}'
        ),
        headers={
            **bearer(admin_key),
            "Idempotency-Key": "order-42",
            "Content-Type": "application/json",
        },
    )
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert second.json()["key"] == first.json()["key"]
    assert owner_db.execute("SELECT count(*) FROM licenses").fetchone()[0] == 1
    assert (
        owner_db.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'license.issue'"
        ).fetchone()[0]
        == 1
    )
    # The stored response is encrypted: the license key is nowhere in clear.
    stored = owner_db.execute("SELECT response_body::text FROM idempotency_keys").fetchone()[0]
    assert first.json()["key"] not in stored
    assert first.json()["key"].split("-", 2)[2] not in stored


def test_an_answer_stored_before_max_users_replays(client, admin_key, catalog, make_org):
    """A first answer stored before migration 0010 (no ``max_users``) still replays."""
    import msgspec

    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "pro"}
    first = _post(client, admin_key, body, "order-0010")
    assert first.status_code == 201, first.text
    older = {k: v for k, v in first.json().items() if k != "max_users"}
    replayed = service._replayed(msgspec.json.encode(older))
    assert replayed.max_users is None and replayed.key == first.json()["key"]
    assert msgspec.to_builtins(replayed) == first.json()


def test_same_key_other_body_is_422(client, admin_key, catalog, make_org, owner_db):
    org = str(make_org())
    body = {"organization_id": org, "product": "local_cli", "tier": "pro"}
    assert _post(client, admin_key, body, "k1").status_code == 201
    assert_problem(
        _post(client, admin_key, {**body, "tier": "free"}, "k1"), 422, "IDEMPOTENCY_KEY_REUSED"
    )
    assert owner_db.execute("SELECT count(*) FROM licenses").fetchone()[0] == 1


def test_keys_are_scoped_per_api_key(client, settings, admin_key, catalog, make_org, owner_db):
    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "pro"}
    other = make_api_key(settings, ["licenses:write"])
    a = _post(client, admin_key, body, "shared")
    b = _post(client, other, body, "shared")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    assert owner_db.execute("SELECT count(*) FROM licenses").fetchone()[0] == 2


def test_a_failed_request_does_not_consume_the_key(client, admin_key, catalog, make_org, owner_db):
    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "nope"}
    assert _post(client, admin_key, body, "retry-me").status_code == 422
    assert owner_db.execute("SELECT count(*) FROM idempotency_keys").fetchone()[0] == 0
    assert _post(client, admin_key, {**body, "tier": "pro"}, "retry-me").status_code == 201


def test_an_expired_key_can_be_used_again(client, admin_key, catalog, make_org, owner_db):
    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "pro"}
    first = _post(client, admin_key, body, "old")
    owner_db.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    second = _post(client, admin_key, body, "old")
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


def test_bad_idempotency_keys(client, admin_key, catalog, make_org):
    body = {"organization_id": str(make_org()), "product": "local_cli", "tier": "pro"}
    for bad in ("x" * 256, "has space"):
        response = _post(client, admin_key, body, bad)
        assert 400 <= response.status_code < 500, response.text


def test_concurrent_requests_with_one_key_issue_one_license(
    settings, kek_text, catalog, make_org, owner_db
):
    """Two transactions race on one key: the unique (scope, key) insert makes the second
    wait for the first, then replay its committed response."""
    from keys.crypto import parse_kek

    kek = parse_kek(kek_text)
    principal = Principal(kind="api_key", id=uuid.uuid4(), scopes=frozenset({"*"}))
    data = LicenseCreate(organization_id=make_org(), product="local_cli", tier="pro")

    async def main() -> list[service.Issued]:
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)

        async def one() -> service.Issued:
            async with sessions() as session, session.begin():
                await set_tenant(session, None, platform_admin=True)
                return await service.issue_license_once(session, kek, principal, data, "race")

        try:
            return list(await asyncio.gather(*(one() for _ in range(4))))
        finally:
            await engine.dispose()

    results = asyncio.run(main())
    assert len({r.license.key for r in results}) == 1
    assert sorted(r.replayed for r in results) == [False, True, True, True]
    assert owner_db.execute("SELECT count(*) FROM licenses").fetchone()[0] == 1

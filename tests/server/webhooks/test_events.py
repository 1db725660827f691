"""Every event type is written to the outbox exactly when its change commits (and its
payload is the admin API's representation of the object then); a rollback writes none. The
request writes the event alone; the dispatcher's fan-out (run here by the ``fan_out``
fixture) numbers it and writes a delivery per endpoint listening."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import factories
import psycopg
import pytest
from support import bearer, event_payload, make_api_key, run

from server.cli_support import admin_session
from server.webhooks import dispatcher, service
from server.webhooks.schemas import EVENT_TYPES

API = "/api/v1"


def _subscribe(client, key: str, url: str = "http://127.0.0.1:9/hook", **extra) -> dict:
    response = client.post(
        f"{API}/webhook-endpoints", json={"url": url, **extra}, headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    return response.json()


def _events(sql) -> list[tuple]:
    return sql.all(
        "SELECT e.id, e.type, e.license_id, e.sequence, count(d.id) FROM webhook_events e "
        "LEFT JOIN webhook_deliveries d ON d.event_id = e.id "
        "GROUP BY e.id ORDER BY e.occurred_at, e.sequence NULLS FIRST"
    )


def _types(sql) -> list[str]:
    return [row[1] for row in _events(sql)]


def test_license_lifecycle_events_with_the_admin_representation(
    outbox_client, webhook_settings, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    _subscribe(client, admin_key)
    lic = make_license()  # written directly: no audit row, no event
    assert _types(sql) == []
    org = str(lic.organization_id)
    issued = client.post(
        f"{API}/licenses",
        json={
            "organization_id": org,
            "product": lic.product,
            "tier": lic.tier,
            "duration_days": 30,
        },
        headers=bearer(admin_key),
    ).json()
    lid = issued["id"]
    path = f"{API}/licenses/{lid}"
    assert client.patch(path, json={"max_activations": 9}, headers=bearer(admin_key)).is_success
    assert client.post(f"{path}/suspend", headers=bearer(admin_key)).is_success
    assert client.post(f"{path}/reinstate", headers=bearer(admin_key)).is_success
    renewed = client.post(f"{path}/renew", json={"duration_days": 30}, headers=bearer(admin_key))
    assert renewed.is_success, renewed.text
    assert client.post(f"{path}/revoke", headers=bearer(admin_key)).is_success
    # a refused change (already revoked) writes nothing
    assert client.post(f"{path}/suspend", headers=bearer(admin_key)).status_code == 409
    # the request wrote the events alone: no sequence, no delivery until the fan-out
    assert [(r[3], r[4]) for r in _events(sql)] == [(None, 0)] * 6
    assert fan_out() == (6, 6)
    assert fan_out() == (0, 0)  # once each
    rows = _events(sql)
    assert [r[1] for r in rows] == [
        "license.created",
        "license.updated",
        "license.suspended",
        "license.reinstated",
        "license.renewed",
        "license.revoked",
    ]
    assert [r[3] for r in rows] == [1, 2, 3, 4, 5, 6]  # the per-license sequence
    assert all(r[4] == 1 for r in rows)  # one delivery each, to the one endpoint
    created = event_payload(webhook_settings, rows[0][0])
    assert created["type"] == "license.created" and created["id"] == str(rows[0][0])
    assert created["organization_id"] == org and created["sequence"] == 1
    assert created["data"]["status"] == "active" and created["data"]["max_activations"] == 5
    assert "key" not in created["data"]  # never the license key
    suspended = event_payload(webhook_settings, rows[2][0])["data"]
    assert suspended["status"] == "suspended" and suspended["max_activations"] == 9
    revoked = event_payload(webhook_settings, rows[5][0])["data"]
    now = client.get(path, headers=bearer(admin_key)).json()
    assert revoked == now  # the admin API's representation, as it was then (= now)


def test_a_change_of_tier_is_announced_with_the_new_tier(
    outbox_client, webhook_settings, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    lic = make_license(tier="pro")
    make_license(tier="team", max_activations=9)  # the product's second tier
    _subscribe(client, admin_key, events=["license.tier_changed"])
    path = f"{API}/licenses/{lic.id}/change-tier"
    changed = client.post(path, json={"tier": "team"}, headers=bearer(admin_key))
    assert changed.is_success, changed.text
    assert fan_out() == (1, 1)
    [row] = _events(sql)
    assert row[1:] == ("license.tier_changed", lic.id, 1, 1)
    data = event_payload(webhook_settings, row[0])["data"]
    assert data["tier"] == "team" and data["max_activations"] == 9  # the new tier's seats


def test_activation_events_say_who_freed_the_seat(
    outbox_client, webhook_settings, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    _subscribe(client, admin_key, events=["activation.*"])
    lic = make_license()
    body = {"license_key": lic.key, "product": lic.product}
    for machine in ("m-1", "m-2"):
        answer = client.post(f"{API}/licenses/activate", json={**body, "fingerprint": machine})
        assert answer.status_code in (200, 201), answer.text
    # activating again (a renewal) is no event
    client.post(f"{API}/licenses/activate", json={**body, "fingerprint": "m-1"})
    assert client.post(f"{API}/licenses/deactivate", json={**body, "fingerprint": "m-1"}).is_success
    admin_seat = sql.one(
        "SELECT id FROM activations WHERE license_id = %s AND deactivated_at IS NULL", lic.id
    )
    freed = client.delete(
        f"{API}/licenses/{lic.id}/activations/{admin_seat}", headers=bearer(admin_key)
    )
    assert freed.is_success, freed.text
    # and a customer: an owner of the organization frees the last seat
    client.post(f"{API}/licenses/activate", json={**body, "fingerprint": "m-3"})
    seat = sql.one(
        "SELECT id FROM activations WHERE license_id = %s AND deactivated_at IS NULL", lic.id
    )
    owner = _user_headers(webhook_settings, sql, lic.organization_id, "owner")
    assert client.delete(f"{API}/licenses/{lic.id}/activations/{seat}", headers=owner).is_success
    fan_out()
    rows = _events(sql)
    assert [r[1] for r in rows] == [
        "activation.created",
        "activation.created",
        "activation.deleted",
        "activation.deleted",
        "activation.created",
        "activation.deleted",
    ]
    assert [r[3] for r in rows] == [1, 2, 3, 4, 5, 6]  # the license's sequence
    assert all(r[4] == 1 for r in rows)
    assert event_payload(webhook_settings, rows[5][0])["data"]["deleted_by"] == "customer"
    first = event_payload(webhook_settings, rows[0][0])["data"]
    assert first["license_id"] == str(lic.id) and first["holds_seat"] is True
    assert "m-1" not in json.dumps(first)  # never the raw fingerprint
    by_product = event_payload(webhook_settings, rows[2][0])["data"]
    by_admin = event_payload(webhook_settings, rows[3][0])["data"]
    assert by_product["deleted_by"] == "product" and by_product["holds_seat"] is False
    assert by_admin["deleted_by"] == "admin" and by_admin["id"] == str(admin_seat)


def test_no_request_needed_for_expiries_once_each(
    outbox_client, webhook_settings, admin_key, make_license, sql
) -> None:
    client = outbox_client
    _subscribe(client, admin_key, events=["license.*", "activation.expired"])
    soon = make_license(expires_at=datetime.now(UTC) + timedelta(days=3))
    later = make_license(expires_at=datetime.now(UTC) + timedelta(days=60))
    gone = make_license(expires_at=datetime.now(UTC) + timedelta(days=60))
    stale = make_license()
    activated = client.post(
        f"{API}/licenses/activate",
        json={"license_key": stale.key, "product": stale.product, "fingerprint": "old"},
    )
    assert activated.status_code in (200, 201)
    sql.all("UPDATE licenses SET expires_at = now() - interval '1 hour' WHERE id = %s", gone.id)
    sql.all(
        "UPDATE activations SET lease_expires_at = now() - interval '30 days' "
        "WHERE license_id = %s",
        stale.id,
    )
    engine_settings = webhook_settings

    async def scan_twice() -> tuple[dict, dict]:
        from server.db.session import create_side_engine

        engine = create_side_engine(engine_settings)
        try:
            return await dispatcher.scan(engine), await dispatcher.scan(engine)
        finally:
            await engine.dispose()

    first, second = run(scan_twice())
    assert first == {"expiring": 1, "expired": 1, "seats": 1}
    assert second == {"expiring": 0, "expired": 0, "seats": 0}
    by_license = {r[2]: r[1] for r in _events(sql)}
    assert by_license[soon.id] == "license.expiring"
    assert by_license[gone.id] == "license.expired"
    assert by_license[stale.id] == "activation.expired"
    assert later.id not in by_license
    expired = next(r for r in _events(sql) if r[1] == "license.expired")
    assert event_payload(webhook_settings, expired[0])["data"]["status"] == "expired"


def test_signing_key_events_go_to_deployment_wide_endpoints_only(
    outbox_client, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    lic = make_license()
    everything = _subscribe(client, admin_key, url="http://127.0.0.1:9/all")
    scoped = _subscribe(
        client, admin_key, url="http://127.0.0.1:9/org", organization_id=str(lic.organization_id)
    )
    rotated = client.post(f"{API}/keys/rotate", headers=bearer(admin_key))
    assert rotated.status_code == 201, rotated.text
    assert client.post(f"{API}/keys/rotate", headers=bearer(admin_key)).status_code == 201
    keys = client.get(f"{API}/keys", headers=bearer(admin_key)).json()
    retired = next(k["kid"] for k in keys if k["state"] == "retired")
    assert client.post(f"{API}/keys/{retired}/revoke", headers=bearer(admin_key)).is_success
    fan_out()
    deliveries = sql.all(
        "SELECT e.type, d.endpoint_id FROM webhook_events e JOIN webhook_deliveries d "
        "ON d.event_id = e.id ORDER BY d.id"
    )
    assert [t for t, _ in deliveries] == [
        "signing_key.rotated",
        "signing_key.rotated",
        "signing_key.revoked",
    ]
    assert {str(e) for _, e in deliveries} == {everything["id"]}
    assert scoped["id"] not in {str(e) for _, e in deliveries}


def test_an_organization_endpoint_never_sees_another_organization(
    outbox_client, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    mine, theirs = make_license(), make_license()
    endpoint = _subscribe(
        client, admin_key, organization_id=str(mine.organization_id), events=["license.*"]
    )
    for lic in (mine, theirs):
        assert client.post(f"{API}/licenses/{lic.id}/suspend", headers=bearer(admin_key)).is_success
    fan_out()
    delivered = sql.all(
        "SELECT e.license_id FROM webhook_deliveries d JOIN webhook_events e "
        "ON e.id = d.event_id WHERE d.endpoint_id = %s",
        endpoint["id"],
    )
    assert delivered == [(mine.id,)]
    # and nobody listens to `theirs`: no event at all was written for it
    assert sql.one("SELECT count(*) FROM webhook_events WHERE license_id = %s", theirs.id) == 0


def test_the_fan_out_numbers_per_license_and_follows_each_filter(
    outbox_client, webhook_settings, admin_key, make_license, sql, fan_out
) -> None:
    """The fan-out gives each license its own sequence, continued from one fan-out to the
    next, and writes deliveries only to the endpoints whose filters take the event (type,
    prefix, organization, enabled, existing when it happened)."""
    client = outbox_client
    a, b = make_license(), make_license()
    everything = _subscribe(client, admin_key, url="http://127.0.0.1:9/all")
    suspensions = _subscribe(
        client, admin_key, url="http://127.0.0.1:9/suspended", events=["license.suspended"]
    )
    only_b = _subscribe(
        client, admin_key, url="http://127.0.0.1:9/b", organization_id=str(b.organization_id)
    )
    off = _subscribe(client, admin_key, url="http://127.0.0.1:9/off")
    toggle = {"enabled": False}
    assert client.patch(
        f"{API}/webhook-endpoints/{off['id']}", json=toggle, headers=bearer(admin_key)
    ).is_success

    def change(lic, action: str) -> None:
        answer = client.post(f"{API}/licenses/{lic.id}/{action}", headers=bearer(admin_key))
        assert answer.is_success, answer.text

    change(a, "suspend")
    change(b, "suspend")
    change(a, "reinstate")
    assert fan_out() == (3, 3 + 2 + 1)
    change(b, "reinstate")
    late = _subscribe(client, admin_key, url="http://127.0.0.1:9/late")  # after that event
    change(a, "suspend")
    assert fan_out()[0] == 2
    rows = sql.all(
        "SELECT e.license_id, e.type, e.sequence, d.endpoint_id::text FROM webhook_events e "
        "JOIN webhook_deliveries d ON d.event_id = e.id ORDER BY d.id"
    )
    by_event: dict[tuple, set[str]] = {}
    for license_id, kind, sequence, endpoint in rows:
        by_event.setdefault((license_id, kind, sequence), set()).add(endpoint)
    assert by_event == {
        (a.id, "license.suspended", 1): {everything["id"], suspensions["id"]},
        (b.id, "license.suspended", 1): {everything["id"], suspensions["id"], only_b["id"]},
        (a.id, "license.reinstated", 2): {everything["id"]},
        (b.id, "license.reinstated", 2): {everything["id"], only_b["id"]},
        (a.id, "license.suspended", 3): {everything["id"], suspensions["id"], late["id"]},
    }
    assert off["id"] not in {r[3] for r in rows}


def test_the_trigger_and_the_fan_out_agree_on_who_listens(database) -> None:
    """The trigger's frozen copy of the listening rule is the fan-out's current one."""
    import psycopg

    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'licentia_webhook_outbox'"
        ).fetchone()
    assert row is not None
    assert service.listens_sql("v_type", "NEW.organization_id") in row[0]


def test_a_rolled_back_change_emits_nothing(webhook_settings, admin_key, make_license, sql):
    from server.license_admin.service import suspend_license

    from_key = make_api_key(webhook_settings, ["webhooks:write"])
    assert from_key
    lic = make_license()

    class Boom(Exception):
        pass

    async def subscribe_then_fail() -> None:
        async with admin_session(webhook_settings) as session:
            await service.create_endpoint(
                session,
                ("cli", None),
                _kek(webhook_settings),
                service.UrlPolicy(True, True),
                _create("http://127.0.0.1:9/hook"),
            )
        with pytest.raises(Boom):
            async with admin_session(webhook_settings) as session:
                await suspend_license(session, ("cli", None), lic.id)
                written = await session.scalar(_count_events())
                assert written == 1  # written in the transaction ...
                raise Boom

    run(subscribe_then_fail())
    assert _types(sql) == []  # ... and gone with it
    assert sql.one("SELECT status FROM licenses WHERE id = %s", lic.id) == "active"


def test_every_event_type_is_emitted_somewhere(database) -> None:
    """The list of types the API accepts matches the types the outbox writes (the mappings of
    0006, 0009 and 0010), and the installed trigger function maps every one."""
    from importlib import import_module

    mappings: dict[str, str] = {}
    for revision in (
        "0006_webhooks",
        "0009_named_users",
        "0010_license_max_users_and_usage_reset_event",
    ):
        mappings.update(import_module(f"migrations.versions.{revision}").ACTIONS)
    assert set(mappings.values()) | {"webhook.test"} == set(EVENT_TYPES)
    with psycopg.connect(database.owner_url) as conn:
        row = conn.execute(
            "SELECT prosrc FROM pg_proc WHERE proname = 'licentia_webhook_outbox'"
        ).fetchone()
    assert row is not None
    for action, kind in mappings.items():
        assert f"WHEN '{action}' THEN '{kind}'" in row[0]


def _user_headers(settings, sql, org, role: str) -> dict[str, str]:
    with psycopg.connect(sql.url, autocommit=True) as db:
        user_id = factories.user(db, org, role)
    return factories.access_headers(settings, user_id, org, role)


def _kek(settings) -> bytes:
    from keys.crypto import parse_kek

    return parse_kek(settings.key_encryption_key)


def _create(url: str):
    from server.webhooks.schemas import EndpointCreate

    return EndpointCreate(url=url)


def _count_events():
    from sqlalchemy import func, select

    from server.models import WebhookEvent

    return select(func.count()).select_from(WebhookEvent)

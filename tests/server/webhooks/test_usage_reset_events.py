"""A usage reset announces itself: ``license.usage_reset`` (migration 0010's mapping), with the
license as the admin API shows it and what was reset; written exactly when the reset commits."""

from __future__ import annotations

import json
import uuid

import pytest
from support import bearer, event_payload, run

from server.cli_support import admin_session
from server.webhooks import service

API = "/api/v1"
METERS = {
    "automations": {"limit": 10, "period": "month"},
    "installs": {"limit": 5, "period": None},
}


def _subscribe(client, key: str, url: str, events: list[str]) -> str:
    response = client.post(
        f"{API}/webhook-endpoints", json={"url": url, "events": events}, headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _consume(client, lic, meter: str, amount: int) -> None:
    answer = client.post(
        f"{API}/licenses/usage",
        json={"license_key": lic.key, "product": lic.product, "meter": meter, "amount": amount},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert answer.status_code == 200, answer.text


def test_a_reset_is_an_event_with_the_license_and_what_was_reset(
    outbox_client, webhook_settings, admin_key, make_license, sql, fan_out
) -> None:
    client = outbox_client
    everything = _subscribe(client, admin_key, "http://127.0.0.1:9/all", ["license.*"])
    exact = _subscribe(client, admin_key, "http://127.0.0.1:9/reset", ["license.usage_reset"])
    machines = _subscribe(client, admin_key, "http://127.0.0.1:9/act", ["activation.*"])
    lic = make_license(tier="metered", meters=METERS)
    _consume(client, lic, "automations", 7)
    _consume(client, lic, "installs", 2)

    one = client.post(
        f"{API}/licenses/{lic.id}/usage/reset",
        json={"meter": "automations"},
        headers=bearer(admin_key),
    )
    assert one.status_code == 200, one.text
    every = client.post(f"{API}/licenses/{lic.id}/usage/reset", json={}, headers=bearer(admin_key))
    assert every.status_code == 200, every.text
    # a refused reset (no such meter) is no event
    nope = client.post(
        f"{API}/licenses/{lic.id}/usage/reset", json={"meter": "nope"}, headers=bearer(admin_key)
    )
    assert nope.status_code == 404

    assert fan_out() == (2, 4)
    rows = sql.all(
        "SELECT e.id, e.type, e.license_id, e.sequence, array_agg(d.endpoint_id::text) "
        "FROM webhook_events e JOIN webhook_deliveries d ON d.event_id = e.id "
        "GROUP BY e.id ORDER BY e.sequence"
    )
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("license.usage_reset", lic.id, 1),
        ("license.usage_reset", lic.id, 2),
    ]
    assert all(sorted(r[4]) == sorted([everything, exact]) for r in rows)
    assert machines not in {e for r in rows for e in r[4]}

    first = event_payload(webhook_settings, rows[0][0])
    assert first["type"] == "license.usage_reset" and first["sequence"] == 1
    data = first["data"]
    assert data.pop("reset") == {"meters": {"automations": 7}}
    now = client.get(f"{API}/licenses/{lic.id}", headers=bearer(admin_key)).json()
    assert data == now  # the admin API's representation, and never the key
    assert "key" not in data and lic.key not in json.dumps(first)
    second = event_payload(webhook_settings, rows[1][0])["data"]
    assert second["reset"] == {"meters": {"automations": 0, "installs": 2}}


def test_a_reset_emits_exactly_when_it_commits(
    webhook_settings, admin_key, make_license, sql
) -> None:
    """The event is written in the reset's transaction: a rollback takes it away, a commit
    keeps it (whoever resets: here the service as the command line calls it)."""
    from server.metering.service import reset_usage

    outbox_endpoint(webhook_settings)
    lic = make_license(tier="metered", meters=METERS)
    events = "SELECT count(*) FROM webhook_events WHERE type = 'license.usage_reset'"

    class Boom(Exception):
        pass

    async def reset_then_fail() -> None:
        async with admin_session(webhook_settings) as session:
            await reset_usage(session, ("cli", None), lic.id, "automations")
            written = await session.scalar(_count_events())
            assert written == 1  # written in the transaction ...
            raise Boom

    with pytest.raises(Boom):
        run(reset_then_fail())
    assert sql.one(events) == 0  # ... and gone with it
    assert sql.one("SELECT count(*) FROM audit_events WHERE action = 'license.usage_reset'") == 0

    async def reset() -> None:
        async with admin_session(webhook_settings) as session:
            await reset_usage(session, ("cli", None), lic.id)

    run(reset())
    assert sql.one(events) == 1
    context = sql.one("SELECT context FROM webhook_events WHERE license_id = %s", lic.id)
    assert context["actor_type"] == "cli"
    assert context["reset"] == {"meters": {"automations": 0, "installs": 0}}


def test_other_events_carry_no_reset(
    outbox_client, webhook_settings, admin_key, make_license, sql
) -> None:
    client = outbox_client
    _subscribe(client, admin_key, "http://127.0.0.1:9/all", ["license.*"])
    lic = make_license(tier="metered", meters=METERS)
    assert client.post(f"{API}/licenses/{lic.id}/suspend", headers=bearer(admin_key)).is_success
    event_id, context = sql.all("SELECT id, context FROM webhook_events")[0]
    assert set(context) == {"actor_type", "audit_event_id"}
    assert "reset" not in event_payload(webhook_settings, event_id)["data"]


def outbox_endpoint(settings) -> None:
    """An endpoint listening to every event, made through the service."""
    from keys.crypto import parse_kek
    from server.webhooks.schemas import EndpointCreate

    async def work() -> None:
        async with admin_session(settings) as session:
            await service.create_endpoint(
                session,
                ("cli", None),
                parse_kek(settings.key_encryption_key),
                service.UrlPolicy(True, True),
                EndpointCreate(url="http://127.0.0.1:9/hook"),
            )

    run(work())


def _count_events():
    from sqlalchemy import func, select

    from server.models import WebhookEvent

    return select(func.count()).select_from(WebhookEvent)

"""Named-user seats announce themselves: ``license.user_assigned`` and
``license.user_unassigned`` (migration 0009's mapping), with the license as the object."""

from __future__ import annotations

import json

import factories
from support import bearer, run

from server.cli_support import admin_session
from server.webhooks import service

API = "/api/v1"
PRODUCT = "cloud_ide_events"


def test_assigning_and_unassigning_are_events(
    outbox_client, admin_key, owner_db, sql, fan_out
) -> None:
    client = outbox_client
    subscribed = client.post(
        f"{API}/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/hook", "events": ["license.*"]},
        headers=bearer(admin_key),
    )
    assert subscribed.status_code == 201, subscribed.text
    factories.product(owner_db, PRODUCT, {"team": factories.Tier(seat_kind="user", max_users=1)})
    org = factories.organization(owner_db)
    alice = factories.user(owner_db, org)
    lic = factories.license(owner_db, org, PRODUCT, "team")

    factories.license_user(factories.AdminApi(client, bearer(admin_key)), lic, alice)
    gone = client.delete(f"{API}/licenses/{lic.id}/users/{alice}", headers=bearer(admin_key))
    assert gone.status_code == 204

    fan_out()  # numbers the events
    rows = sql.all(
        "SELECT id, type, license_id, context->>'user_id' FROM webhook_events ORDER BY sequence"
    )
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("license.user_assigned", lic.id, str(alice)),
        ("license.user_unassigned", lic.id, str(alice)),
    ]

    async def render() -> dict:
        from sqlalchemy import select

        from server.models import WebhookEvent

        async with admin_session(outbox_client.app.state.settings) as session:
            event = await session.scalar(select(WebhookEvent).where(WebhookEvent.id == rows[0][0]))
            return json.loads(service.render(event))

    payload = run(render())
    assert payload["type"] == "license.user_assigned"
    assert payload["data"]["id"] == str(lic.id) and payload["data"]["tier"] == "team"
    assert payload["data"]["user_id"] == str(alice)

"""The retry rule (back-off with jitter for 3 days) and disabling an endpoint that has
failed for 5 days, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from support import bearer

from server.webhooks.service import DISABLE_AFTER, RETRY_WINDOW, next_attempt, should_disable

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def test_back_off_doubles_with_jitter_and_is_capped() -> None:
    low = [next_attempt(n, T0, T0, rand=0.0) - T0 for n in range(1, 6)]
    high = [next_attempt(n, T0, T0, rand=1.0) - T0 for n in range(1, 6)]
    assert high == [timedelta(seconds=s) for s in (5, 10, 20, 40, 80)]
    assert low == [h / 2 for h in high]  # jitter: between half and all of the delay
    assert next_attempt(40, T0, T0, rand=1.0) - T0 == timedelta(hours=4)  # the cap


def test_retries_last_three_days_and_end_with_an_attempt_at_the_window_end() -> None:
    now, attempts = T0, 0
    while (retry := next_attempt(attempts + 1, T0, now, rand=0.5)) is not None:
        attempts += 1
        now = retry
    assert now == T0 + RETRY_WINDOW  # the last attempt, three days after the event
    assert 15 < attempts < 40
    assert next_attempt(attempts + 1, T0, now) is None


@pytest.mark.parametrize(
    ("failing_for", "expected"),
    [(None, False), (timedelta(days=4, hours=23), False), (DISABLE_AFTER, True)],
)
def test_disable_after_five_days(failing_for, expected) -> None:
    since = None if failing_for is None else T0 - failing_for
    assert should_disable(since, T0) is expected


def test_an_endpoint_failing_for_five_days_is_disabled_and_audited(
    outbox_client, admin_key, receiver, sql
) -> None:
    receiver.answer = lambda _: 500
    client = outbox_client
    endpoint = client.post(
        "/api/v1/webhook-endpoints", json={"url": receiver.url + "/hook"}, headers=bearer(admin_key)
    ).json()
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}"
    first = client.post(f"{path}/test", headers=bearer(admin_key)).json()
    assert first["delivered"] is False and first["status_code"] == 500
    shown = client.get(path, headers=bearer(admin_key)).json()
    assert shown["enabled"] is True and shown["failing_since"] is not None
    deliveries = client.get(f"{path}/deliveries", headers=bearer(admin_key)).json()["items"]
    assert deliveries[0]["attempts"] == 1 and deliveries[0]["last_status"] == 500
    assert deliveries[0]["next_attempt_at"] is not None  # to be tried again
    sql.all(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '5 days 1 minute' "
        "WHERE id = %s",
        endpoint["id"],
    )
    client.post(f"{path}/test", headers=bearer(admin_key))
    shown = client.get(path, headers=bearer(admin_key)).json()
    assert shown["enabled"] is False and shown["disabled_reason"] == "failing"
    audited = sql.all(
        "SELECT actor_type, target_id FROM audit_events WHERE action = 'webhook_endpoint.disabled'"
    )
    assert audited == [("system", endpoint["id"])]
    # a success clears the failure streak; enabling again resumes the endpoint
    receiver.answer = lambda _: 200
    enabled = client.patch(path, json={"enabled": True}, headers=bearer(admin_key)).json()
    assert enabled["enabled"] is True and enabled["failing_since"] is None
    assert client.post(f"{path}/test", headers=bearer(admin_key)).json()["delivered"] is True

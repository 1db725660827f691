"""Delivery through a real `licentia serve` to a real receiver on the loopback: signed the
Standard Webhooks way, retried until a 2xx, never held up by a slow endpoint."""

from __future__ import annotations

import json

import httpx
import pytest
import standardwebhooks
from support import Received, assert_problem, bearer, run, wait_until

from keys.webhooks import sign
from server.webhooks import dispatcher

API = "/api/v1"


def _subscribe(server, key: str, url: str, **extra) -> dict:
    response = httpx.post(
        f"{server.base_url}{API}/webhook-endpoints",
        json={"url": url, **extra},
        headers=bearer(key),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _suspend(server, key: str, license_id) -> None:
    answer = httpx.post(
        f"{server.base_url}{API}/licenses/{license_id}/suspend", headers=bearer(key)
    )
    assert answer.status_code == 200, answer.text


def _verify(secret: str, got: Received) -> dict:
    """With the Standard Webhooks library (not our code): raises on a bad signature."""
    return standardwebhooks.Webhook(secret).verify(got.body, got.headers)


def test_signed_events_verify_with_a_standard_webhooks_library(
    webhook_server, admin_key, receiver, make_license
) -> None:
    server = webhook_server()
    lic = make_license()
    endpoint = _subscribe(server, admin_key, receiver.url + "/hook")
    secret = endpoint["secret"]
    assert secret.startswith("whsec_")
    # never shown again
    shown = httpx.get(
        f"{server.base_url}{API}/webhook-endpoints/{endpoint['id']}", headers=bearer(admin_key)
    ).json()
    assert "secret" not in shown and secret not in json.dumps(shown)
    _suspend(server, admin_key, lic.id)
    got = wait_until(lambda: receiver.of_type("license.suspended"), "the event")[0]
    payload = _verify(secret, got)
    assert payload["data"]["id"] == str(lic.id) and payload["data"]["status"] == "suspended"
    assert got.headers["webhook-id"] == payload["id"]
    # our own signer agrees byte for byte
    ours = sign(secret, got.headers["webhook-id"], int(got.headers["webhook-timestamp"]), got.body)
    assert got.headers["webhook-signature"] == ours
    # a wrong secret fails verification
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "A" * 43 + "=").verify(got.body, got.headers)


def test_rotation_signs_with_both_secrets_for_a_while(
    webhook_server, admin_key, receiver, make_license
) -> None:
    server = webhook_server()
    lic = make_license()
    endpoint = _subscribe(server, admin_key, receiver.url + "/hook", events=["license.*"])
    rotated = httpx.post(
        f"{server.base_url}{API}/webhook-endpoints/{endpoint['id']}/rotate-secret",
        headers=bearer(admin_key),
    )
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != endpoint["secret"]
    _suspend(server, admin_key, lic.id)
    got = wait_until(lambda: receiver.of_type("license.suspended"), "the event")[0]
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    _verify(new_secret, got)
    _verify(endpoint["secret"], got)  # receivers not yet updated keep working


def test_a_failing_receiver_gets_the_event_later_with_the_attempts_recorded(
    webhook_server, admin_key, receiver, make_license
) -> None:
    failures = {"left": 2}

    def answer(_: Received) -> int:
        if failures["left"] > 0:
            failures["left"] -= 1
            return 500
        return 200

    receiver.answer = answer
    server = webhook_server()
    lic = make_license()
    endpoint = _subscribe(server, admin_key, receiver.url + "/hook")
    _suspend(server, admin_key, lic.id)
    url = f"{server.base_url}{API}/webhook-endpoints/{endpoint['id']}/deliveries"

    def delivered() -> list[dict]:
        items = httpx.get(url, headers=bearer(admin_key)).json()["items"]
        return [d for d in items if d["delivered_at"]]

    [delivery] = wait_until(delivered, "the delivery after two failures")
    assert delivery["attempts"] == 3 and delivery["last_status"] == 200
    assert delivery["type"] == "license.suspended" and delivery["next_attempt_at"] is None
    received = receiver.of_type("license.suspended")
    assert len(received) == 3 and len({r.headers["webhook-id"] for r in received}) == 1


def test_the_test_endpoint_answers_with_the_outcome_and_retry_sends_again(
    webhook_server, admin_key, receiver
) -> None:
    server = webhook_server()
    endpoint = _subscribe(server, admin_key, receiver.url + "/hook", events=["license.*"])
    receiver.answer = lambda _: 503
    base = f"{server.base_url}{API}"
    failed = httpx.post(
        f"{base}/webhook-endpoints/{endpoint['id']}/test", headers=bearer(admin_key)
    ).json()
    assert failed["delivered"] is False and failed["status_code"] == 503
    receiver.answer = lambda _: 200
    ok = httpx.post(
        f"{base}/webhook-endpoints/{endpoint['id']}/test", headers=bearer(admin_key)
    ).json()
    assert ok["delivered"] is True and ok["status_code"] == 200
    assert _verify(endpoint["secret"], receiver.of_type("webhook.test")[-1])["type"] == (
        "webhook.test"
    )
    retried = httpx.post(
        f"{base}/webhook-deliveries/{ok['delivery_id']}/retry", headers=bearer(admin_key)
    )
    assert retried.status_code == 202
    wait_until(
        lambda: (
            len(
                [
                    r
                    for r in receiver.of_type("webhook.test")
                    if r.json()["id"] == str(ok["event_id"])
                ]
            )
            == 2
        ),
        "the retried delivery",
    )
    missing = httpx.post(f"{base}/webhook-deliveries/999999/retry", headers=bearer(admin_key))
    assert_problem(missing, 404, "WEBHOOK_DELIVERY_NOT_FOUND")


def test_a_slow_endpoint_does_not_hold_up_a_healthy_one(
    webhook_server, admin_key, receiver, make_license
) -> None:
    receiver.slow_seconds = 30
    # 2 attempts per endpoint, 4 in all per process: without the per-endpoint bound the
    # slow endpoint's 6 deliveries would take every slot
    server = webhook_server(
        LICENTIA_WEBHOOK_TIMEOUT_SECONDS="45",
        LICENTIA_WEBHOOK_CONCURRENCY="4",
        LICENTIA_WEBHOOK_CONCURRENCY_PER_ENDPOINT="2",
    )
    slow = _subscribe(server, admin_key, receiver.url + "/slow", events=["license.suspended"])
    _subscribe(server, admin_key, receiver.url + "/fast", events=["license.suspended"])
    licenses = [make_license() for _ in range(6)]
    for lic in licenses:
        _suspend(server, admin_key, lic.id)
    fast = wait_until(
        lambda: len(receiver.of_type("license.suspended", "/fast")) == 6 or None,
        "every event at the healthy endpoint",
    )
    assert fast
    # ... while every attempt at the slow one is still waiting for its answer
    assert receiver.of_type("license.suspended", "/slow") == []
    pending = httpx.get(
        f"{server.base_url}{API}/webhook-endpoints/{slow['id']}/deliveries",
        headers=bearer(admin_key),
    ).json()["items"]
    assert len(pending) == 6 and not any(d["delivered_at"] for d in pending)


def test_redirects_are_not_followed(webhook_server, admin_key, receiver, make_license) -> None:
    receiver.answer = lambda _: 302
    server = webhook_server()
    endpoint = _subscribe(server, admin_key, receiver.url + "/hook")
    outcome = httpx.post(
        f"{server.base_url}{API}/webhook-endpoints/{endpoint['id']}/test",
        headers=bearer(admin_key),
    ).json()
    assert outcome["delivered"] is False and outcome["status_code"] == 302
    assert len(receiver.received) == 1


# --- the SSRF rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://example.com/hook", "WEBHOOK_URL_FORBIDDEN"),  # not https
        ("https://127.0.0.1/hook", "WEBHOOK_URL_FORBIDDEN"),  # loopback
        ("https://localhost/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("https://10.1.2.3/hook", "WEBHOOK_URL_FORBIDDEN"),  # private
        ("https://192.168.0.10/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("https://169.254.169.254/latest/meta-data", "WEBHOOK_URL_FORBIDDEN"),  # metadata
        ("https://[::1]/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("https://[::ffff:127.0.0.1]/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("https://[fd00:ec2::254]/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("https://100.64.0.1/hook", "WEBHOOK_URL_FORBIDDEN"),  # shared address space
        ("https://0.0.0.0/hook", "WEBHOOK_URL_FORBIDDEN"),
        ("ftp://example.com/hook", "WEBHOOK_URL_INVALID"),
        ("https://user:pw@example.com/hook", "WEBHOOK_URL_INVALID"),
        ("https://no-such-host.invalid/hook", "WEBHOOK_URL_UNRESOLVABLE"),
    ],
)
def test_forbidden_urls_are_refused(client, admin_key, url: str, code: str) -> None:
    response = client.post(f"{API}/webhook-endpoints", json={"url": url}, headers=bearer(admin_key))
    assert_problem(response, 422, code)


def test_unknown_event_types_and_scopes(client, settings) -> None:
    from support import make_api_key

    reader = make_api_key(settings, ["webhooks:read"])
    refused = client.post(
        f"{API}/webhook-endpoints",
        json={"url": "https://93.184.215.14/hook"},
        headers=bearer(reader),
    )
    assert_problem(refused, 403)
    writer = make_api_key(settings, ["webhooks:write"])
    unknown = client.post(
        f"{API}/webhook-endpoints",
        json={"url": "https://93.184.215.14/hook", "events": ["license.exploded"]},
        headers=bearer(writer),
    )
    assert_problem(unknown, 422, "UNKNOWN_EVENT_TYPE")


def test_the_address_is_checked_again_at_delivery_time(receiver) -> None:
    """An endpoint saved while its name pointed elsewhere (DNS rebinding) is refused when
    the name now resolves to the loopback: nothing is sent."""

    async def attempt() -> dispatcher.Outcome:
        async with dispatcher.new_client() as client:
            return await dispatcher.send(
                client,
                receiver.url.replace("127.0.0.1", "localhost") + "/hook",
                ["whsec_" + "A" * 43 + "="],
                "evt-1",
                b"{}",
                timeout=5,
                allow_insecure=True,
                allow_private=False,
            )

    outcome = run(attempt())
    assert outcome == dispatcher.Outcome(None, "WEBHOOK_URL_FORBIDDEN")
    assert receiver.received == []

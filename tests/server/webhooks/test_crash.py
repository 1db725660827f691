"""None is lost: events committed before a `kill -9` are delivered after the restart, and
two workers sharing the outbox never deliver one event twice at the same time."""

from __future__ import annotations

import threading
import time

import httpx
from support import Received, bearer, kill_server, wait_until

API = "/api/v1"


def _subscribe(server, key: str, url: str) -> dict:
    response = httpx.post(
        f"{server.base_url}{API}/webhook-endpoints",
        json={"url": url, "events": ["license.*"]},
        headers=bearer(key),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _outbox_ids(sql) -> set[str]:
    return {str(row[0]) for row in sql.all("SELECT id FROM webhook_events")}


def _all_delivered(sql) -> bool:
    """Every event fanned out, and every delivery delivered."""
    return (
        sql.one("SELECT count(*) FROM webhook_events WHERE fanned_out_at IS NULL") == 0
        and sql.one("SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL") == 0
    )


def test_an_event_committed_before_a_kill_is_delivered_after_the_restart(
    webhook_server, admin_key, receiver, make_license, sql
) -> None:
    lic = make_license()
    # a server whose dispatcher is off: the change commits, nothing is delivered ...
    first = webhook_server(LICENTIA_WEBHOOK_DISPATCHER="0")
    _subscribe(first, admin_key, receiver.url + "/hook")
    answer = httpx.post(
        f"{first.base_url}{API}/licenses/{lic.id}/suspend", headers=bearer(admin_key)
    )
    assert answer.status_code == 200
    kill_server(first)  # ... and the process dies
    assert receiver.received == []
    [event_id] = _outbox_ids(sql)
    # not even fanned out yet: the request wrote the event alone
    assert sql.one("SELECT count(*) FROM webhook_deliveries") == 0
    webhook_server()
    got = wait_until(lambda: receiver.of_type("license.suspended"), "the event after restart")
    assert [r.headers["webhook-id"] for r in got] == [event_id]


def test_two_workers_never_deliver_one_event_twice_at_once(
    webhook_server, admin_key, receiver, make_license, sql
) -> None:
    def slow_ok(_: Received) -> int:
        time.sleep(0.02)  # widen the window two claimers would need
        return 200

    receiver.answer = slow_ok
    server = webhook_server(workers=2)
    _subscribe(server, admin_key, receiver.url + "/hook")
    licenses = [make_license() for _ in range(20)]
    with httpx.Client(base_url=server.base_url, headers=bearer(admin_key)) as client:
        for action in ("suspend", "reinstate", "suspend", "reinstate", "suspend"):
            for lic in licenses:
                assert client.post(f"{API}/licenses/{lic.id}/{action}").status_code == 200
    wait_until(lambda: _all_delivered(sql), "every delivery")
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == 100 and set(ids) == _outbox_ids(sql)  # each exactly once
    assert receiver.max_in_flight_per_id == 1


class Driver(threading.Thread):
    """Makes ``total`` license changes (suspend / reinstate in turn over the licenses)
    against whichever server is up, retrying each until it has an answer: 200, or 409 when
    the lost answer of an earlier try had committed it."""

    def __init__(self, licenses, key: str, total: int) -> None:
        super().__init__(daemon=True)
        self.licenses, self.key, self.total = licenses, key, total
        self.base_url = ""
        self.done = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(headers=bearer(self.key), timeout=10) as client:
                for i in range(self.total):
                    lic = self.licenses[i % len(self.licenses)]
                    action = "suspend" if (i // len(self.licenses)) % 2 == 0 else "reinstate"
                    while True:
                        try:
                            answer = client.post(f"{self.base_url}{API}/licenses/{lic.id}/{action}")
                        except httpx.HTTPError:
                            time.sleep(0.05)
                            continue
                        if answer.status_code in (200, 409):
                            break
                        time.sleep(0.05)  # 5xx while the database connections recover
                    self.done = i + 1
        except BaseException as exc:
            self.error = exc


def test_a_thousand_changes_over_two_workers_killed_twice_lose_no_event(
    webhook_server, admin_key, receiver, make_license, sql
) -> None:
    licenses = [make_license() for _ in range(48)]
    server = webhook_server(workers=2, LICENTIA_WEBHOOK_TIMEOUT_SECONDS="2")
    _subscribe(server, admin_key, receiver.url + "/hook")
    # four clients side by side, each over its own licenses: 4 x 250 = 1,000 changes
    drivers = [Driver(licenses[lane::4], admin_key, 250) for lane in range(4)]
    for driver in drivers:
        driver.base_url = server.base_url
        driver.start()
    for kill_at in (300, 650):
        wait_until(
            lambda at=kill_at: sum(d.done for d in drivers) >= at,
            f"{kill_at} changes",
            timeout=120,
        )
        kill_server(server)
        server = webhook_server(workers=2, LICENTIA_WEBHOOK_TIMEOUT_SECONDS="2")
        for driver in drivers:
            driver.base_url = server.base_url
    for driver in drivers:
        driver.join(180)
        assert driver.error is None and driver.done == 250
    changes = sql.one(
        "SELECT count(*) FROM audit_events WHERE action IN ('license.suspend', 'license.reinstate')"
    )
    assert changes == 1000  # every change committed once (a 409 was a lost answer)
    outbox = _outbox_ids(sql)
    assert len(outbox) == 1000  # one event per committed change
    wait_until(lambda: _all_delivered(sql), "every delivery", timeout=120)
    assert outbox <= receiver.ids()  # every event at least once, none missing
    assert receiver.max_in_flight_per_id == 1

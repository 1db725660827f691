"""Seats never oversell: simultaneous calls on two real worker processes (`serve --workers 2`)."""

from __future__ import annotations

import asyncio
import threading

import httpx

API = "/api/v1/licenses"


def body(lic, fingerprint: str) -> dict[str, str]:
    return {"license_key": lic.key, "product": lic.product, "fingerprint": fingerprint}


async def _post_all(base_url: str, calls: list[tuple[str, dict]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(client.post(f"{API}/{route}", json=data) for route, data in calls)
            )
        )


def post_all(base_url: str, calls: list[tuple[str, dict]]) -> list[httpx.Response]:
    return asyncio.run(_post_all(base_url, calls))


def test_seats_never_oversell_on_two_worker_processes(
    live_server_factory,
    make_license,
    sql,
) -> None:
    """One server (two workers) for the three races: starting one takes most of the time."""
    server = live_server_factory(workers=2)
    distinct_machines_race_for_5_seats(server.base_url, make_license, sql)
    one_machine_64_times_at_once(server.base_url, make_license, sql)
    deactivate_racing_activate(server.base_url, make_license, sql)


def distinct_machines_race_for_5_seats(base_url: str, make_license, sql) -> None:
    lic = make_license(tier="five", max_activations=5)
    responses = post_all(base_url, [("activate", body(lic, f"m-{i}")) for i in range(64)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 5, statuses
    assert statuses.count(409) == 59, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"ACTIVATION_LIMIT"}
    assert sql.live(lic.id) == 5
    rows = sql.all("SELECT id FROM activations WHERE license_id = %s", lic.id)
    created = {r.json()["activation_id"] for r in responses if r.status_code == 201}
    assert created == {str(row[0]) for row in rows}


def one_machine_64_times_at_once(base_url: str, make_license, sql) -> None:
    lic = make_license(tier="same", max_activations=5)
    responses = post_all(base_url, [("activate", body(lic, "same"))] * 64)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(200) == 63, statuses
    assert len({r.json()["activation_id"] for r in responses}) == 1
    assert sql.one("SELECT count(*) FROM activations WHERE license_id = %s", lic.id) == 1


def deactivate_racing_activate(base_url: str, make_license, sql) -> None:
    seats = 3
    lic = make_license(tier="three", max_activations=seats, max_deactivations_per_day=10_000)
    holders = [f"first-{i}" for i in range(seats)]
    for response in post_all(base_url, [("activate", body(lic, fp)) for fp in holders]):
        assert response.status_code == 201

    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, sql.live(lic.id))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for round_ in range(4):
            newcomers = [f"r{round_}-{i}" for i in range(12)]
            calls = [("deactivate", body(lic, fp)) for fp in holders]
            calls += [("activate", body(lic, fp)) for fp in newcomers]
            responses = post_all(base_url, calls)
            outcomes = [
                (route, r.status_code) for (route, _), r in zip(calls, responses, strict=True)
            ]
            assert all(status == 204 for route, status in outcomes if route == "deactivate")
            assert all(status in (201, 409) for route, status in outcomes if route == "activate")
            holders = [
                data["fingerprint"]
                for (route, data), r in zip(calls, responses, strict=True)
                if route == "activate" and r.status_code == 201
            ]
            live = sql.live(lic.id)
            assert live <= seats
            assert live == len(holders)
    finally:
        stop.set()
        watcher.join()
    assert peak <= seats

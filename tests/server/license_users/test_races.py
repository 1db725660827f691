"""Named-user seats never oversell: simultaneous calls on two real worker processes."""

from __future__ import annotations

import asyncio

import factories
import httpx

PRODUCT = "cloud_ide_races"


async def _all(
    base_url: str, calls: list[tuple[str, dict, dict[str, str]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(client.post(url, json=body, headers=headers) for url, body, headers in calls)
            )
        )


def post_all(base_url: str, calls: list[tuple[str, dict, dict[str, str]]]) -> list[httpx.Response]:
    return asyncio.run(_all(base_url, calls))


def test_assignments_and_user_machines_never_go_over(
    live_server_factory, owner_db, settings, sql
) -> None:
    server = live_server_factory(workers=2)
    factories.product(
        owner_db,
        PRODUCT,
        {
            "team": factories.Tier(
                max_activations=50, seat_kind="user", max_users=3, machines_per_user=2
            )
        },
    )
    org = factories.organization(owner_db)
    owner = factories.user(owner_db, org, "owner")
    owner_headers = factories.access_headers(settings, owner, org, "owner")
    lic = factories.license(owner_db, org, PRODUCT, "team")
    members = [factories.user(owner_db, org) for _ in range(12)]

    # 12 owners' requests at once, each assigning another member, for 3 user seats
    url = f"/api/v1/licenses/{lic.id}/users"
    responses = post_all(
        server.base_url, [(url, {"user_id": str(m)}, owner_headers) for m in members]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 3 and statuses.count(409) == 9, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"USER_LIMIT"}
    assert sql.one("SELECT count(*) FROM license_users WHERE license_id = %s", lic.id) == 3

    # one assigned user activates 16 machines at once: machines_per_user (2) succeed
    assigned = {r.json()["user_id"] for r in responses if r.status_code == 201}
    user = next(m for m in members if str(m) in assigned)
    headers = factories.access_headers(settings, user, org, "member")
    body = {"license_key": lic.key, "product": PRODUCT}
    calls = [
        ("/api/v1/licenses/activate", {**body, "fingerprint": f"m-{i}"}, headers) for i in range(16)
    ]
    statuses = sorted(r.status_code for r in post_all(server.base_url, calls))
    assert statuses.count(201) == 2 and statuses.count(409) == 14, statuses
    assert (
        sql.one(
            "SELECT count(*) FROM activations WHERE license_id = %s AND user_id = %s", lic.id, user
        )
        == 2
    )

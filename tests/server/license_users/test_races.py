"""Named-user seats never oversell: simultaneous calls on two real worker processes."""

from __future__ import annotations

import asyncio
import uuid

import factories
import httpx
import psycopg

PRODUCT = "cloud_ide_races"
Call = tuple[str, dict, dict[str, str]]


async def _all(base_url: str, calls: list[Call]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(client.post(url, json=body, headers=headers) for url, body, headers in calls)
            )
        )


def post_all(base_url: str, calls: list[Call]) -> list[httpx.Response]:
    return asyncio.run(_all(base_url, calls))


def _team(owner_url: str) -> tuple[uuid.UUID, uuid.UUID, factories.License, list[uuid.UUID]]:
    """An organization with an owner, 12 members and a license of 3 named users."""
    with psycopg.connect(owner_url, autocommit=True) as db:
        tier = factories.Tier(
            max_activations=50, seat_kind="user", max_users=3, machines_per_user=2
        )
        factories.product(db, PRODUCT, {"team": tier})
        org = factories.organization(db)
        owner = factories.user(db, org, "owner")
        lic = factories.license(db, org, PRODUCT, "team")
        return org, owner, lic, [factories.user(db, org) for _ in range(12)]


def test_assignments_and_user_machines_never_go_over(
    live_server_factory, database, settings, sql
) -> None:
    server = live_server_factory(workers=2)
    org, owner, lic, members = _team(database.owner_url)

    # 12 requests of the owner at once, each assigning another member, for 3 user seats
    owner_headers = factories.access_headers(settings, owner, org, "owner")
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
    responses = post_all(server.base_url, calls)
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 2 and statuses.count(409) == 14, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"USER_MACHINE_LIMIT"}
    live = "SELECT count(*) FROM activations WHERE license_id = %s AND user_id = %s"
    assert sql.one(live, lic.id, user) == 2

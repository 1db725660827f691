"""Named-user seats never oversell: simultaneous calls on two real worker processes."""

from __future__ import annotations

import asyncio
import uuid

import factories
import httpx
import psycopg
from support import bearer, make_api_key

PRODUCT = "cloud_ide_races"
Call = tuple[str, dict, dict[str, str]]


async def _all(
    base_url: str, calls: list[Call], method: str | list[str] = "POST"
) -> list[httpx.Response]:
    methods = [method] * len(calls) if isinstance(method, str) else method
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(
                    client.request(verb, url, json=body, headers=headers)
                    for verb, (url, body, headers) in zip(methods, calls, strict=True)
                )
            )
        )


def post_all(base_url: str, calls: list[Call]) -> list[httpx.Response]:
    return asyncio.run(_all(base_url, calls))


def _team(
    owner_url: str, max_users: int | None = None
) -> tuple[uuid.UUID, uuid.UUID, factories.License, list[uuid.UUID]]:
    """An organization with an owner, 12 members and a license of 3 named users (the tier's;
    ``max_users``: the license's own)."""
    with psycopg.connect(owner_url, autocommit=True) as db:
        tier = factories.Tier(
            max_activations=50, seat_kind="user", max_users=3, machines_per_user=2
        )
        factories.product(db, PRODUCT, {"team": tier})
        org = factories.organization(db)
        owner = factories.user(db, org, "owner")
        lic = factories.license(db, org, PRODUCT, "team", max_users=max_users)
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


def test_a_license_override_holds_under_simultaneous_assignments(
    live_server_factory, database, settings, sql
) -> None:
    """The license's own ``max_users`` (5, the tier's is 3) is the limit 12 simultaneous
    assignments meet; then simultaneous assignments and changes of ``max_users`` on another
    license never leave more users than the license allows."""
    server = live_server_factory(workers=2)
    org, owner, lic, members = _team(database.owner_url, max_users=5)
    owner_headers = factories.access_headers(settings, owner, org, "owner")
    url = f"/api/v1/licenses/{lic.id}/users"
    responses = post_all(
        server.base_url, [(url, {"user_id": str(m)}, owner_headers) for m in members]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 5 and statuses.count(409) == 7, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"USER_LIMIT"}
    assert sql.one("SELECT count(*) FROM license_users WHERE license_id = %s", lic.id) == 5

    org, owner, lic, members = _team(database.owner_url, max_users=8)
    owner_headers = factories.access_headers(settings, owner, org, "owner")
    admin = bearer(make_api_key(settings, ["licenses:write"]))
    url = f"/api/v1/licenses/{lic.id}/users"
    assigns: list[Call] = [(url, {"user_id": str(m)}, owner_headers) for m in members]
    lowers: list[Call] = [(f"/api/v1/licenses/{lic.id}", {"max_users": n}, admin) for n in (2, 4)]
    calls = assigns[:6] + lowers[:1] + assigns[6:] + lowers[1:]
    methods = ["PATCH" if call in lowers else "POST" for call in calls]
    responses = asyncio.run(_all(server.base_url, calls, methods))
    patched = [r for r, m in zip(responses, methods, strict=True) if m == "PATCH"]
    assert all(r.status_code in (200, 409) for r in patched), [r.text for r in patched]
    assert {r.json()["code"] for r in patched if r.status_code == 409} <= {"USERS_ASSIGNED"}
    assigned = sql.one("SELECT count(*) FROM license_users WHERE license_id = %s", lic.id)
    allowed = sql.one("SELECT coalesce(max_users, 3) FROM licenses WHERE id = %s", lic.id)
    created = sum(
        1 for r, m in zip(responses, methods, strict=True) if m == "POST" and r.status_code == 201
    )
    assert created == assigned <= allowed, (created, assigned, allowed)

"""Meters never pass their limit: simultaneous consumptions on two real worker processes
(`licentia serve --workers 2`)."""

from __future__ import annotations

import asyncio
import uuid

import httpx

API = "/api/v1/licenses"


async def _post_all(base_url: str, bodies: list[dict]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        f"{API}/usage", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
                    )
                    for body in bodies
                )
            )
        )


def test_64_consumptions_against_a_limit_of_10_on_two_workers(
    live_server_factory, make_license, sql
) -> None:
    server = live_server_factory(workers=2)
    lic = make_license(tier="metered", meters={"automations": {"limit": 10, "period": "month"}})
    body = {"license_key": lic.key, "product": lic.product, "meter": "automations"}
    responses = asyncio.run(_post_all(server.base_url, [body] * 64))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(409) == 54, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"USAGE_LIMIT"}
    assert sorted(r.json()["used"] for r in responses if r.status_code == 200) == list(range(1, 11))
    assert sql.one("SELECT used FROM license_usage WHERE license_id = %s", lic.id) == 10

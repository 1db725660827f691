"""Plans and trials under concurrency, on two real worker processes (`serve --workers 2`):
a change of plan racing 64 activations never leaves more live seats than the new tier
allows; 32 simultaneous trial requests for one machine make one trial. Also the
LicenseClient's keyless trial against the real server."""

from __future__ import annotations

import asyncio

import httpx
from licentia_verifier import LicenseClient, Verifier
from support import bearer, make_api_key


async def _send_all(base_url: str, calls: list[tuple[str, dict, dict]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(calls), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        return list(
            await asyncio.gather(
                *(client.post(path, json=data, headers=headers) for path, data, headers in calls)
            )
        )


def send_all(base_url: str, calls: list[tuple[str, dict, dict]]) -> list[httpx.Response]:
    return asyncio.run(_send_all(base_url, calls))


def test_plans_and_trials_on_two_worker_processes(
    live_server_factory, make_license, sql, settings, tmp_path
) -> None:
    """One server for every race: starting it takes most of the time."""
    server = live_server_factory(workers=2)
    change_tier_racing_64_activations(server.base_url, make_license, sql, settings)
    one_machine_asks_for_a_trial_32_times_at_once(server.base_url, make_license, sql)
    license_client_starts_a_trial(server.base_url, settings, tmp_path)


def change_tier_racing_64_activations(base_url: str, make_license, sql, settings) -> None:
    small = make_license(tier="small", max_activations=3)  # the tier moved to
    lic = make_license(tier="big", max_activations=8, organization_id=small.organization_id)
    activate = "/api/v1/licenses/activate"

    def machine(fingerprint: str) -> tuple[str, dict, dict]:
        body = {"license_key": lic.key, "product": lic.product, "fingerprint": fingerprint}
        return (activate, body, {})

    for response in send_all(base_url, [machine(f"first-{i}") for i in range(4)]):
        assert response.status_code == 201
    admin = bearer(make_api_key(settings, ["licenses:write"]))
    change = (
        f"/api/v1/licenses/{lic.id}/change-tier",
        {"tier": "small", "release": "least_recently_seen"},
        admin,
    )
    calls = [machine(f"m-{i}") for i in range(64)]
    calls.insert(32, change)
    responses = send_all(base_url, calls)
    changed = responses[32]
    assert changed.status_code == 200, changed.text
    assert changed.json()["tier"] == "small" and changed.json()["max_activations"] == 3
    statuses = [r.status_code for i, r in enumerate(responses) if i != 32]
    assert set(statuses) <= {201, 409}, statuses
    live = sql.live(lic.id)
    assert live <= 3, live
    # Every seat taken after the change counts toward the new limit: more activations now
    # are refused, and a full re-count agrees.
    again = send_all(base_url, [machine(f"late-{i}") for i in range(4)])
    assert sum(r.status_code == 201 for r in again) == 3 - live
    assert sql.live(lic.id) == 3


def one_machine_asks_for_a_trial_32_times_at_once(base_url: str, make_license, sql) -> None:
    make_license(
        product="racer", tier="trial", is_trial=True, self_serve_trials=True, duration_days=7
    )
    body = {"product": "racer", "fingerprint": "one-machine"}
    responses = send_all(base_url, [("/api/v1/trials", body, {})] * 32)
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 1 and statuses.count(200) == 31, statuses
    assert len({r.json()["trial_id"] for r in responses}) == 1
    assert len({r.json()["trial_ends_at"] for r in responses}) == 1
    assert sql.one("SELECT count(*) FROM trials") == 1


def license_client_starts_a_trial(base_url: str, settings, tmp_path) -> None:
    jwks = httpx.get(f"{base_url}/.well-known/jwks.json").json()
    verifier = Verifier.from_jwks(jwks, product="racer", issuer=settings.issuer)
    client = LicenseClient(
        base_url, product="racer", verifier=verifier, cache_dir=tmp_path, fingerprint="laptop"
    )
    started = client.start_trial(name="laptop")
    assert started.is_trial and started.tier == "trial"
    assert client.license() == started  # offline, from the cache
    assert client.start_trial().expires_at == started.expires_at

"""``GET /metrics``: who may scrape, what is counted (by route template, by licensing
outcome), the database figures, and the sums across the workers of a real ``licentia serve``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from litestar.testing import TestClient
from support import assert_problem, bearer, parse_metrics, sample

from server.metrics import DatabaseStats, StatsStore
from server.settings import Settings

TOKEN = "scrape-token-for-tests"
API = "/api/v1/licenses"


@pytest.fixture
def metered(settings: Settings, signing_key: str) -> Iterator[TestClient]:
    from server.app import create_app

    app = create_app(msgspec_replace(settings, metrics_token=TOKEN))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def msgspec_replace(settings: Settings, **changes: object) -> Settings:
    import msgspec

    return msgspec.structs.replace(settings, **changes)


def scrape(client: TestClient) -> dict:
    response = client.get("/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


def test_metrics_need_the_token(metered: TestClient) -> None:
    assert_problem(metered.get("/metrics"), 401, "UNAUTHENTICATED")
    assert_problem(metered.get("/metrics", headers=bearer("wrong")), 401, "UNAUTHENTICATED")
    assert_problem(metered.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}), 401)
    assert metered.get("/metrics", headers=bearer(TOKEN)).status_code == 200


def test_no_token_configured_means_no_metrics_path(client: TestClient) -> None:
    assert_problem(client.get("/metrics", headers=bearer(TOKEN)), 404)
    schema = client.get("/schema/openapi.json").json()
    assert "/metrics" not in schema["paths"]


def test_requests_are_counted_by_route_template(metered: TestClient, admin_key: str) -> None:
    product = "/api/v1/products/{code}"
    before = scrape(metered)
    for _ in range(3):
        missing = metered.get("/api/v1/products/no-such-product", headers=bearer(admin_key))
        assert missing.status_code == 404
    assert metered.get("/no/such/path/1").status_code == 404
    assert metered.get("/no/such/path/2").status_code == 404
    after = scrape(metered)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("licentia_http_requests_total", route=product, method="GET", status="404") == 3
    assert grew("licentia_http_request_duration_seconds_count", route=product) == 3
    assert grew("licentia_http_requests_total", route="unmatched", method="GET", status="404") == 2
    assert not any("/no/such" in str(labels) for _, labels in after)


def test_licensing_outcomes_and_unknown_keys(metered: TestClient, make_license) -> None:
    lic = make_license(max_activations=1, license_max_activations=1)
    expired = make_license(status="suspended")
    before = scrape(metered)
    valid = {"license_key": lic.key, "product": lic.product}
    assert metered.post(f"{API}/validate", json=valid).json()["code"] == "VALID"
    suspended = {"license_key": expired.key, "product": expired.product}
    assert metered.post(f"{API}/validate", json=suspended).json()["code"] == "SUSPENDED"
    unknown = {"license_key": "LIC-NOPE-NOPE-NOPE", "product": lic.product}
    assert metered.post(f"{API}/validate", json=unknown).json()["code"] == "NOT_FOUND"
    assert metered.post(f"{API}/activate", json={**valid, "fingerprint": "m-1"}).status_code == 201
    assert metered.post(f"{API}/activate", json={**valid, "fingerprint": "m-1"}).status_code == 200
    full = metered.post(f"{API}/activate", json={**valid, "fingerprint": "m-2"})
    assert_problem(full, 409, "ACTIVATION_LIMIT")
    after = scrape(metered)

    def grew(operation: str, code: str) -> float:
        name, labels = "licentia_licensing_outcomes_total", {"operation": operation, "code": code}
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("validate", "VALID") == 1
    assert grew("validate", "SUSPENDED") == 1
    assert grew("validate", "NOT_FOUND") == 1
    assert grew("activate", "CREATED") == 1
    assert grew("activate", "RENEWED") == 1
    assert grew("activate", "ACTIVATION_LIMIT") == 1
    unknown_keys = "licentia_unknown_license_keys_total"
    assert sample(after, unknown_keys) - sample(before, unknown_keys) == 1


def test_database_figures(metered: TestClient, make_license) -> None:
    lic = make_license(max_activations=3, license_max_activations=3)
    make_license(status="revoked")
    body = {"license_key": lic.key, "product": lic.product}
    for machine in ("a", "b"):
        assert metered.post(f"{API}/activate", json={**body, "fingerprint": machine}).is_success
    # The app was just created: its first scrape reads the database.
    samples = scrape(metered)
    assert sample(samples, "licentia_database_up") == 1
    assert sample(samples, "licentia_seats_in_use") == 2
    assert sample(samples, "licentia_licenses", status="active") == 1
    assert sample(samples, "licentia_licenses", status="revoked") == 1
    assert 0 <= sample(samples, "licentia_signing_key_age_seconds") < 3600
    assert ("licentia_signing_key_next_activation_seconds", frozenset()) not in samples


@pytest.mark.parametrize("shared", [True, False], ids=["workers-share-a-file", "one-process"])
def test_the_database_is_read_at_most_every_30_seconds(tmp_path, shared: bool) -> None:
    """Whichever worker claims the read first does it; the others answer from its figures
    until 30 s have passed (times given, not waited for)."""
    directory = str(tmp_path) if shared else None
    first, second = StatsStore(directory), StatsStore(directory)
    assert first.claim(now=1000.0)
    first.store(DatabaseStats(read_at=1000.0, up=True, seats_in_use=7))
    others = second if shared else first
    assert not others.claim(now=1029.0)
    assert others.load() == DatabaseStats(read_at=1000.0, up=True, seats_in_use=7)
    assert others.claim(now=1031.0)
    assert not first.claim(now=1032.0)


def test_two_workers_sum_and_never_go_back(live_server_factory) -> None:
    """A real ``licentia serve --workers 2``: every scrape (answered by either worker) shows
    the requests of both, and no counter ever drops from one scrape to the next."""
    server = live_server_factory(workers=2, LICENTIA_METRICS_TOKEN=TOKEN)
    live = ("licentia_http_requests_total", "/health/live")
    sent = 0
    previous: dict = {}
    pids: set[str] = set()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for round_ in range(12):
            for _ in range(5):
                assert http.get("/health/live").status_code == 200
                sent += 1
            response = http.get("/metrics", headers=bearer(TOKEN))
            assert response.status_code == 200, response.text
            samples = parse_metrics(response.text)
            counted = sample(samples, live[0], route=live[1], method="GET", status="200")
            assert counted == sent, (round_, counted, sent)
            for key, value in previous.items():
                if key[0].endswith(("_total", "_count", "_bucket", "_sum")):
                    assert samples.get(key, 0.0) >= value, (key, value, samples.get(key))
            previous = samples
            pids |= {
                dict(labels)["pid"]
                for name, labels in samples
                if name == "process_cpu_seconds_total"
            }
        assert http.get("/metrics").status_code == 401
    assert len(pids) == 2, pids

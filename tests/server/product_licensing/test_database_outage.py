"""The database goes away mid-load: 503 problem + Retry-After, then recovery by itself,
with no activation lost or duplicated. On a real server process."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

API = "/api/v1/licenses"


def _block(admin_url: str, database: str, allow: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND usename = 'licentia_app'",
                (database,),
            )


def test_outage_answers_503_and_recovers(live_server_factory, make_license, sql, database) -> None:
    lic = make_license(max_activations=1000)
    server = live_server_factory(workers=1)
    results: dict[str, list[int]] = {}

    def activate(client: httpx.Client, fingerprint: str) -> int:
        data = {"license_key": lic.key, "product": lic.product, "fingerprint": fingerprint}
        response = client.post(f"{API}/activate", json=data)
        if response.status_code == 503:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == "SERVICE_UNAVAILABLE"
            assert int(response.headers["retry-after"]) > 0
        results.setdefault(fingerprint, []).append(response.status_code)
        return response.status_code

    def load(worker: int, rounds: int) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for i in range(rounds):
                activate(client, f"w{worker}-{i}")

    with ThreadPoolExecutor(4) as pool:
        healthy = [pool.submit(load, w, 5) for w in range(4)]
        for future in healthy:
            future.result()
        _block(database.admin_url, database.database, allow=False)
        try:
            outage = [pool.submit(load, w + 10, 5) for w in range(4)]
            for future in outage:
                future.result()
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                ready = client.get("/health/ready")
                assert ready.status_code == 503
        finally:
            _block(database.admin_url, database.database, allow=True)

    seen = Counter(code for codes in results.values() for code in codes)
    assert seen[503] > 0, seen
    assert set(seen) <= {201, 503}, seen

    # Recovery by itself: the next calls succeed; retrying every machine yields one seat each.
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.2)
        for fingerprint, codes in sorted(results.items()):
            expected = 200 if 201 in codes else 201
            retried = activate(client, fingerprint)
            assert retried == expected, (fingerprint, codes, retried)
    assert sql.one("SELECT count(*) FROM activations") == len(results)
    assert sql.live(lic.id) == len(results)
    assert server.process.poll() is None  # not a crash


def test_is_database_unavailable_classification() -> None:
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    from server.db.availability import is_database_unavailable

    refused = asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
        'database "x" is not currently accepting connections'
    )
    wrapped = DBAPIError("SELECT 1", None, refused)
    assert is_database_unavailable(wrapped)
    assert is_database_unavailable(asyncpg.exceptions.AdminShutdownError("terminating"))
    assert is_database_unavailable(ConnectionRefusedError())
    other = asyncpg.exceptions.ObjectNotInPrerequisiteStateError("something else")
    assert not is_database_unavailable(DBAPIError("SELECT 1", None, other))
    assert not is_database_unavailable(asyncpg.exceptions.UniqueViolationError("dup"))
    assert not is_database_unavailable(ValueError("bug"))

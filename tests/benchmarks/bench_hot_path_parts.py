"""CPU per piece of the validate hot path, in process (a script, not a test).

    uv run python tests/benchmarks/bench_server.py --keep --licenses 5000   # prints the dir
    uv run python tests/benchmarks/bench_hot_path_parts.py DIR/big

Runs on uvloop, as ``licentia serve`` does, calling the ASGI application directly (no HTTP
client, no sockets: uvicorn's own share is the bare app's, measured by bench_server.py). The
pieces are interleaved in rounds of ``CALLS`` calls each; the table gives the CPU time
(``time.process_time``) per call, minimum and median over the rounds. The numbers explain
docs/benchmarks.md, "Where the remaining microseconds go".
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvloop

PRODUCT = "bench_app"
CALLS = 500
ROUNDS = 10

Piece = Callable[[], Awaitable[object]]


def asgi_caller(app: Any) -> Callable[[str, bytes], Awaitable[int]]:
    """One request straight into the ASGI application; returns the status."""

    async def call(path: str, body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "POST" if body else "GET",
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        messages: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return int(messages[0]["status"])

    return call


async def measure(pieces: list[tuple[str, Piece]]) -> None:
    for _, piece in pieces:  # warm up: imports, prepared statements, caches
        for _ in range(100):
            await piece()
    cpu: dict[str, list[float]] = {label: [] for label, _ in pieces}
    for _ in range(ROUNDS):
        for label, piece in pieces:
            started = time.process_time()
            for _ in range(CALLS):
                await piece()
            cpu[label].append((time.process_time() - started) / CALLS * 1e6)
    print("| piece | CPU µs (min) | CPU µs (median) |\n|---|---|---|")
    for label, values in cpu.items():
        print(f"| {label} | {min(values):,.0f} | {statistics.median(values):,.0f} |")


async def run(data_dir: Path, database: Any) -> None:
    from keys.tokens import issue_license_token
    from server import license_rules as rules
    from server.app import create_app
    from server.license_rules import hash_license_key
    from server.observability import configure_logging
    from server.product_licensing import service
    from server.product_licensing.schemas import ValidateRequest
    from server.settings import Settings, async_url

    configure_logging("WARNING", json_logs=True)
    settings = Settings(
        database_url=async_url(database.runtime_url),
        key_encryption_key=database.key_encryption_key,
        log_level="WARNING",
    )
    app = create_app(settings)
    pairs = [line.split() for line in (data_dir / "validate.txt").read_text().splitlines()]
    bodies = [
        json.dumps({"license_key": key, "product": PRODUCT, "fingerprint": fp}).encode()
        for key, fp in pairs
    ]
    call = asgi_caller(app)
    async with app.lifespan():
        state = app.state
        caller = service.Caller(settings=settings, keyring=state.keyring, engine=state.side_engine)
        key, fingerprint = pairs[0]
        row = await service._VALIDATE.row(
            state.hot_pool,
            hash=hash_license_key(key),
            fp=service.fingerprint_hash(fingerprint),
            now=rules.current_second(),
        )
        assert row is not None, "the data set's first key is unknown"
        real_validate = service.validate
        canned = await real_validate(
            state.hot_pool,
            caller,
            ValidateRequest(license_key=key, product=PRODUCT, fingerprint=fingerprint),
        )

        async def canned_validate(*_: Any) -> Any:
            return canned

        async def http_health() -> None:
            assert await call("/health/live", b"") == 200

        async def http_validate() -> None:
            service.validate = real_validate
            assert await call("/api/v1/licenses/validate", random.choice(bodies)) == 200

        async def http_validate_canned() -> None:
            service.validate = canned_validate
            try:
                assert await call("/api/v1/licenses/validate", random.choice(bodies)) == 200
            finally:
                service.validate = real_validate

        async def validate_service() -> None:
            key, fingerprint = random.choice(pairs)
            request = ValidateRequest(license_key=key, product=PRODUCT, fingerprint=fingerprint)
            await real_validate(state.hot_pool, caller, request)

        async def pool_select_1() -> None:
            async with state.hot_pool.acquire() as connection:
                await connection.fetchval("SELECT 1")

        async def validate_statement() -> None:
            key, fingerprint = random.choice(pairs)
            await service._VALIDATE.row(
                state.hot_pool,
                hash=hash_license_key(key),
                fp=service.fingerprint_hash(fingerprint),
                now=rules.current_second(),
            )

        async def row_to_answer() -> None:
            now = rules.current_second()
            service.HotLicense.from_row(row, now).summary(row["seats"])

        signer = await state.keyring.signer()
        subject = service.HotLicense.from_row(row, rules.current_second()).terms.subject()

        async def license_token() -> None:
            issue_license_token(
                signer,
                subject,
                issuer=settings.issuer,
                now=rules.current_second(),
                lifetime=timedelta(seconds=settings.license_token_ttl_seconds),
            )

        async def bare_signature() -> None:
            signer.sign("license+jwt", {"sub": str(uuid.uuid4())})

        await measure(
            [
                ("HTTP `/health/live` (framework + middleware)", http_health),
                ("HTTP validate, whole request", http_validate),
                ("HTTP validate, service answer canned (framework only)", http_validate_canned),
                ("`service.validate` (statement + rules + token)", validate_service),
                ("pool acquire/release + `SELECT 1`", pool_select_1),
                ("the validate statement on the pool", validate_statement),
                ("row -> license terms and summary", row_to_answer),
                ("license token (claims + Ed25519 + encoding)", license_token),
                ("a tiny token (Ed25519 and encoding only)", bare_signature),
            ]
        )


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    from server import embedded

    data_dir = Path(sys.argv[1])
    uvloop.run(run(data_dir, embedded.start(data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

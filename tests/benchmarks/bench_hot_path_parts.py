"""CPU per piece of the validate hot path, in process (a script, not a test).

    uv run python tests/benchmarks/bench_server.py --keep --licenses 5000   # prints the dir
    uv run python tests/benchmarks/bench_hot_path_parts.py DIR/big

Each piece runs 1 500 times in sequence against the kept benchmark database (its embedded
PostgreSQL is started on demand); the table gives wall and CPU (``time.process_time``)
microseconds per call. The numbers explain docs/benchmarks.md, "Where the time goes".
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

PRODUCT = "bench_app"
CALLS = 1_500


async def measure(label: str, piece: Callable[[], Awaitable[object]]) -> None:
    for _ in range(50):
        await piece()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(CALLS):
        await piece()
    wall_us = (time.perf_counter() - wall) / CALLS * 1e6
    cpu_us = (time.process_time() - cpu) / CALLS * 1e6
    print(f"| {label} | {wall_us:,.0f} | {cpu_us:,.0f} |")


async def run(data_dir: Path, database: Any) -> None:
    from keys.tokens import TokenSubject, issue_license_token
    from server.app import create_app
    from server.product_licensing import service
    from server.product_licensing.schemas import ValidateRequest
    from server.settings import Settings, async_url

    settings = Settings(
        database_url=async_url(database.runtime_url),
        key_encryption_key=database.key_encryption_key,
        log_level="WARNING",
    )
    app = create_app(settings)
    pairs = [line.split() for line in (data_dir / "validate.txt").read_text().splitlines()]
    async with app.lifespan():
        state = app.state
        caller = service.Caller(settings=settings, keyring=state.keyring, engine=state.side_engine)
        signer = await state.keyring.signer()
        subject = TokenSubject(
            license_id=str(uuid.uuid4()),
            organization_id=str(uuid.uuid4()),
            product=PRODUCT,
            tier="pro",
            features={"sso": True, "seats": 25},
            max_activations=3,
            license_expires_at=None,
        )

        async def orm_session() -> None:
            session = state.sessionmaker()
            await session.begin()
            await session.connection()
            await session.commit()
            await session.close()

        async def pool_only() -> None:
            async with state.hot_pool.acquire():
                pass

        async def pool_and_transaction() -> None:
            async with state.hot_pool.acquire() as connection, connection.transaction():
                pass

        async def validate_service() -> None:
            key, fingerprint = random.choice(pairs)
            request = ValidateRequest(license_key=key, product=PRODUCT, fingerprint=fingerprint)
            await service.validate(state.hot_pool, caller, request)  # one autocommit statement

        async def sign() -> None:
            now = datetime.now(UTC)
            issue_license_token(
                signer, subject, issuer="licentia", now=now, lifetime=timedelta(days=7)
            )

        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

        async def http_validate() -> None:
            key, fingerprint = random.choice(pairs)
            body = {"license_key": key, "product": PRODUCT, "fingerprint": fingerprint}
            await client.post("/api/v1/licenses/validate", json=body)

        async def http_health() -> None:
            await client.get("/health/live")

        print("| piece | wall µs | CPU µs |\n|---|---|---|")
        for label, piece in (
            ("SQLAlchemy session begin/commit/close", orm_session),
            ("asyncpg pool acquire/release", pool_only),
            ("... + BEGIN/COMMIT", pool_and_transaction),
            ("service.validate on the pool (one statement + token)", validate_service),
            ("license token alone", sign),
            ("HTTP validate in process (client included)", http_validate),
            ("HTTP /health/live in process (client included)", http_health),
        ):
            await measure(label, piece)
        await client.aclose()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    from server import embedded

    data_dir = Path(sys.argv[1])
    asyncio.run(run(data_dir, embedded.start(data_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

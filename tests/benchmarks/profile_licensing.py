"""Profile the licensing hot path in process (a script, not a test).

    uv run python tests/benchmarks/profile_licensing.py DATA_DIR [--endpoint validate]
        [--requests 3000] [--concurrency 32] [--sort tottime]

DATA_DIR is a data directory seeded by ``bench_server.py --keep`` (its ``big`` folder). The
application runs under cProfile through ``httpx.ASGITransport`` inside its own lifespan, so
the profile shows the Python cost of one request (no HTTP server, no load generator).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import sys
import time
from pathlib import Path

import httpx

PRODUCT = "bench_app"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument(
        "--endpoint", default="validate", choices=["validate", "check-in", "health"]
    )
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    from server.app import create_app
    from server.cli_support import resolve_database, settings_for

    db = resolve_database(args.data_dir)
    app = create_app(settings_for(db))
    pairs = [
        line.split() for line in (args.data_dir / "validate.txt").read_text().splitlines() if line
    ]

    async def one(client: httpx.AsyncClient) -> None:
        if args.endpoint == "health":
            response = await client.get("/health/live")
        else:
            key, fp = random.choice(pairs)
            body = {"license_key": key, "product": PRODUCT, "fingerprint": fp}
            response = await client.post(f"/api/v1/licenses/{args.endpoint}", json=body)
        if response.status_code != 200:
            raise SystemExit(f"{response.status_code} {response.text}")

    async def worker(client: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            await one(client)

    async def run() -> None:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        client = httpx.AsyncClient(transport=transport, base_url="http://bench")
        async with app.lifespan(), client:
            await worker(client, 200)  # warm up
            per = args.requests // args.concurrency
            profile = cProfile.Profile()
            started = time.perf_counter()
            if not args.no_profile:
                profile.enable()
            await asyncio.gather(*(worker(client, per) for _ in range(args.concurrency)))
            profile.disable()
            elapsed = time.perf_counter() - started
            total = per * args.concurrency
            print(
                f"{total} requests in {elapsed:.2f}s: {total / elapsed:.0f}/s "
                f"({elapsed / total * 1e6:.0f} µs each, client included)"
            )
            if not args.no_profile:
                stats = pstats.Stats(profile, stream=sys.stdout)
                stats.sort_stats(args.sort).print_stats(args.limit)

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())

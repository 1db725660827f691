"""Webhook benchmark (a script, not a test; needs ``wrk``).

    uv run python tests/benchmarks/bench_webhooks.py [--duration 10] [--runs 3] [--write-docs]

Starts ``licentia serve --workers 1`` on a fresh embedded database (seeded as
``bench_server.py`` seeds it, with its helpers) and a receiver (a bare uvicorn app answering
200 to every request, in its own process), then measures:

- **delivery rate**: ``--events`` events written to the outbox in one transaction (audit rows
  of license suspensions, through the outbox trigger) for one endpoint; the time until every
  event is fanned out and every delivery marked delivered gives events per second, one
  worker;
- **activate with 3 endpoints subscribed to everything, against none**: wrk on activate
  (new fingerprints) with the endpoints disabled, then enabled, interleaved in each of
  ``--runs`` runs; with them enabled the same worker also delivers the events the run
  produces. Ratios are medians of per-run ratios; the server CPU per request comes from
  /proc, as in ``bench_server.py``, and so does PostgreSQL's (every process of the embedded
  instance: the backends that run the outbox trigger, the WAL writer, autovacuum).

``--request-path-only`` measures the first activate comparison alone (the dispatcher off),
for quick comparisons of one change against another; it writes nothing. ``--delivery-only``
measures the delivery rate alone, with the worker's CPU per delivery; it writes nothing.

``--write-docs`` replaces the "## Webhooks" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_server import (
    PRODUCT,
    Dataset,
    Result,
    Server,
    base_env,
    cpu_seconds,
    database_urls,
    descendants,
    fmt_cpu,
    fmt_lat,
    fmt_rate,
    machine,
    median,
    run_wrk,
    seed,
    start_process,
    verdict,
    write_section,
)

RECEIVER = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

uvicorn.run(app, host="127.0.0.1", port={port}, log_config=None, access_log=False)
"""


def postgres_pids(data_dir: Path) -> list[int]:
    """The embedded instance's postmaster and every process it started."""
    postmaster = int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    return [postmaster, *descendants(postmaster)]


@dataclass
class Run:
    result: Result
    db_us: float
    """PostgreSQL's CPU time (user + system, all its processes) per request during the run."""

    @property
    def total_us(self) -> float:
        """The server's and PostgreSQL's CPU per request: what the machine's cores spend."""
        return self.result.cpu_us + self.db_us


def start_licentia(data_dir: Path, workdir: Path, *, dispatcher: bool) -> Server:
    argv = [sys.executable, "-m", "server.cli", "serve", "--workers", "1", "--port", "{port}"]
    env = base_env() | {
        "LICENTIA_WEBHOOK_ALLOW_INSECURE": "1",
        "LICENTIA_WEBHOOK_ALLOW_PRIVATE": "1",
        "LICENTIA_WEBHOOK_POLL_SECONDS": "0.2",
        "LICENTIA_WEBHOOK_DISPATCHER": "1" if dispatcher else "0",
    }
    name = "serve" if dispatcher else "serve-no-dispatcher"
    return start_process(name, [*argv, "--data-dir", str(data_dir)], env, workdir)


def owner_sql(data_dir: Path, statement: str, *args: object) -> object:
    import asyncpg

    _, owner_url, _ = database_urls(data_dir)

    async def work() -> object:
        conn = await asyncpg.connect(owner_url)
        try:
            async with conn.transaction():
                await conn.execute("SELECT set_config('app.platform_admin', 'on', true)")
                return await conn.fetchval(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(work())


def add_endpoints(data_dir: Path, url: str, count: int) -> None:
    from keys.crypto import parse_kek
    from server.cli_support import admin_session
    from server.settings import Settings
    from server.webhooks import service
    from server.webhooks.schemas import EndpointCreate

    runtime_url, _, kek = database_urls(data_dir)
    settings = Settings.from_env({"LICENTIA_DATABASE_URL": runtime_url}, key_encryption_key=kek)

    async def work() -> None:
        async with admin_session(settings) as session:
            for _ in range(count):
                await service.create_endpoint(
                    session,
                    ("cli", None),
                    parse_kek(kek),
                    service.UrlPolicy(True, True),
                    EndpointCreate(url=url),
                )

    asyncio.run(work())


PENDING = (
    "SELECT (SELECT count(*) FROM webhook_events WHERE fanned_out_at IS NULL)"
    " + (SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL)"
)
"""Events not fanned out yet, and deliveries not delivered yet."""


def delivery_rate(data_dir: Path, events: int) -> float:
    """Events per second from one commit of ``events`` events to the last delivery."""
    owner_sql(
        data_dir,
        "INSERT INTO audit_events (organization_id, actor_type, action, target_type, target_id)"
        " SELECT organization_id, 'system', 'license.suspend', 'license', id::text"
        " FROM licenses ORDER BY id LIMIT $1",
        events,
    )
    started = time.monotonic()
    while owner_sql(data_dir, PENDING):
        time.sleep(0.05)
    return events / (time.monotonic() - started)


def activate_runs(
    args: argparse.Namespace, dataset: Dataset, server: Server, label: str
) -> tuple[list[Run], list[Run]]:
    """wrk on activate with the 3 endpoints disabled, then enabled, in each run."""
    pids = server.worker_pids()

    def activate(run: int, enabled: bool) -> Run:
        owner_sql(dataset.data_dir, "UPDATE webhook_endpoints SET enabled = $1", enabled)
        tag = f"{label}{run}{int(enabled)}{uuid.uuid4().hex[:6]}"
        db_pids = postgres_pids(dataset.data_dir)
        db_before = {pid: cpu_seconds([pid]) for pid in db_pids}
        result = run_wrk(
            server.base_url,
            "activate.lua",
            [str(dataset.activate_file), PRODUCT, tag],
            args.duration,
            args.connections,
            pids,
        )
        db_used = sum(
            cpu_seconds([pid]) - db_before.get(pid, 0.0) for pid in postgres_pids(dataset.data_dir)
        )
        requests = result.rate * args.duration
        return Run(result, db_used * 1e6 / max(1.0, requests))

    activate(99, False)  # warm-up
    activate(99, True)
    none: list[Run] = []
    three: list[Run] = []
    for run in range(args.runs):
        for enabled, bucket in ((False, none), (True, three)):
            measured = activate(run, enabled)
            bucket.append(measured)
            result = measured.result
            print(
                f"run {run + 1}/{args.runs} {label} activate endpoints={3 if enabled else 0} "
                f"{result.rate:8.0f} req/s  CPU {result.cpu_us:5.0f} µs/req  "
                f"PostgreSQL {measured.db_us:5.0f} µs/req  errors {result.errors}",
                file=sys.stderr,
            )
    return none, three


def _row(label: str, none: list[Run], three: list[Run], target: bool) -> str:
    pairs = list(zip(none, three, strict=True))
    rate_ratio = median([t.result.rate / n.result.rate for n, t in pairs])
    cpu_ratio = median([n.result.cpu_us / t.result.cpu_us for n, t in pairs])
    db_ratio = median([n.db_us / t.db_us for n, t in pairs])
    both_ratio = median([n.total_us / t.total_us for n, t in pairs])
    goal = f"≥ 0.9x | {verdict(rate_ratio >= 0.9)}" if target else "| "

    def cell(runs: list[Run]) -> str:
        results = [r.result for r in runs]
        db = median([r.db_us for r in runs])
        return f"{fmt_rate(results)}; {fmt_lat(results)}; {fmt_cpu(results)}; {db:,.0f}"

    return (
        f"| {label} | {cell(none)} | {cell(three)} "
        f"| {rate_ratio:.2f} (CPU: server {cpu_ratio:.2f}; PostgreSQL {db_ratio:.2f}; "
        f"both {both_ratio:.2f}) | {goal} |"
    )


def spread(runs: list[Run]) -> str:
    rates = [r.result.rate for r in runs]
    return f"{min(rates):,.0f}-{max(rates):,.0f}"


def request_path_only(args: argparse.Namespace, workdir: Path) -> str:
    """The request path alone (dispatcher off), for comparing changes quickly."""
    dataset = Dataset("webhooks", args.licenses, workdir / "db")
    receiver = start_process("receiver", [sys.executable, "-c", RECEIVER], base_env(), workdir)
    server = None
    try:
        server = start_licentia(dataset.data_dir, workdir, dispatcher=False)
        seed(dataset)
        add_endpoints(dataset.data_dir, receiver.base_url + "/three", 3)
        none, three = activate_runs(args, dataset, server, "outbox-only")
    finally:
        if server is not None:
            server.stop()
        receiver.stop()
    return (
        _row("activate, the request path", none, three, True)
        + f"\nrates without endpoints {spread(none)}, with 3 endpoints {spread(three)} req/s"
    )


def delivery_only(args: argparse.Namespace, workdir: Path) -> str:
    """Deliveries alone (one worker, one endpoint): events per second and the worker's CPU
    per delivery, for comparing dispatcher changes quickly."""
    dataset = Dataset("webhooks", args.licenses, workdir / "db")
    receiver = start_process("receiver", [sys.executable, "-c", RECEIVER], base_env(), workdir)
    server = None
    try:
        server = start_licentia(dataset.data_dir, workdir, dispatcher=True)
        seed(dataset)
        add_endpoints(dataset.data_dir, receiver.base_url + "/one", 1)
        pids = server.worker_pids()
        lines = []
        for run in range(args.runs):
            before = cpu_seconds(pids)
            rate = delivery_rate(dataset.data_dir, args.events)
            used = cpu_seconds(pids) - before
            lines.append(
                f"run {run + 1}/{args.runs}: {rate:,.0f} events/s, "
                f"worker CPU {used * 1e6 / args.events:,.0f} µs per delivery"
            )
    finally:
        if server is not None:
            server.stop()
        receiver.stop()
    return "\n".join(lines)


def webhook_benchmark(args: argparse.Namespace, workdir: Path) -> str:
    dataset = Dataset("webhooks", args.licenses, workdir / "db")
    servers: list[Server] = []
    try:
        receiver = start_process("receiver", [sys.executable, "-c", RECEIVER], base_env(), workdir)
        servers.append(receiver)
        # 1. the request path alone: a server whose dispatcher is off (the outbox fills up)
        server = start_licentia(dataset.data_dir, workdir, dispatcher=False)
        seed(dataset)
        add_endpoints(dataset.data_dir, receiver.base_url + "/three", 3)
        outbox_none, outbox_three = activate_runs(args, dataset, server, "outbox-only")
        server.stop()
        owner_sql(dataset.data_dir, "DELETE FROM webhook_endpoints RETURNING 1")
        # 2. the same worker delivering: the delivery rate, then activate while delivering
        server = start_licentia(dataset.data_dir, workdir, dispatcher=True)
        servers.append(server)
        add_endpoints(dataset.data_dir, receiver.base_url + "/one", 1)
        rates = [delivery_rate(dataset.data_dir, args.events) for _ in range(args.runs)]
        owner_sql(dataset.data_dir, "DELETE FROM webhook_endpoints RETURNING 1")
        add_endpoints(dataset.data_dir, receiver.base_url + "/three", 3)
        busy_none, busy_three = activate_runs(args, dataset, server, "delivering")
        pending = owner_sql(
            dataset.data_dir,
            "SELECT (SELECT 3 * count(*) FROM webhook_events WHERE fanned_out_at IS NULL)"
            " + (SELECT count(*) FROM webhook_deliveries WHERE delivered_at IS NULL)",
        )
    finally:
        for running in servers:
            running.stop()

    rows = [
        "| Measure | no endpoint: req/s; p50 / p99 ms; server CPU µs/req; PostgreSQL CPU "
        "µs/req | 3 endpoints subscribed to everything | rate ratio (CPU per request, without "
        "/ with: server; PostgreSQL; both) | Target | |",
        "|---|---|---|---|---|---|",
        _row(
            "activate, the request path (dispatcher off: the outbox only)",
            outbox_none,
            outbox_three,
            True,
        ),
        _row("activate, the same worker delivering meanwhile", busy_none, busy_three, False),
        f"| events delivered per second, one worker, one endpoint ({args.events} events per "
        f"run) | {median(rates):,.0f} | | | | |",
    ]
    header = (
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d}.\n\n"
        "`licentia serve --workers 1` on a fresh embedded PostgreSQL "
        f"({args.licenses} licenses seeded as in the server load benchmark) and a receiver "
        "(bare uvicorn, 200 to every request) in its own process. Activate: wrk, 1 thread, "
        f"{args.connections} connections, {args.duration} s, with the 3 endpoints disabled and "
        f"enabled in turn in each of {args.runs} runs; ratios are medians of per-run ratios "
        "(in parentheses: CPU per request without endpoints divided by with them, of the "
        "server's worker, of all PostgreSQL's processes, and of both together). "
        "First with the dispatcher off, so the number is what a request pays for its events "
        "(the outbox rows); then with the worker also delivering, 3 deliveries per "
        f"activation ({pending} were still pending when the last run ended). Delivery rate: "
        "events written to the outbox in one transaction, timed until the last is marked "
        f"delivered (median of {args.runs}). Produced by `uv run python "
        "tests/benchmarks/bench_webhooks.py --write-docs`.\n"
    )
    return header + "\n" + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per activate run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--licenses", type=int, default=3_000)
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--request-path-only", action="store_true")
    parser.add_argument("--delivery-only", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench_webhooks.py needs wrk (`apt-get install wrk`)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="licentia-bench-webhooks-"))
    try:
        if args.request_path_only:
            print(request_path_only(args, workdir))
            return 0
        if args.delivery_only:
            print(delivery_only(args, workdir))
            return 0
        body = webhook_benchmark(args, workdir)
        print(body)
        if args.write_docs:
            write_section("## Webhooks", body)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

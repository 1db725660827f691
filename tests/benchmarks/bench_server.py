"""Server load benchmark (a script, not a test; needs ``wrk``).

    uv run python tests/benchmarks/bench_server.py [--duration 15] [--runs 3] [--write-docs]
    uv run python tests/benchmarks/bench_server.py --compare-servers [--write-docs]

Starts a bare Litestar app (one GET answering a small JSON, on uvicorn + uvloop + httptools,
one worker: the in-run baseline every ratio is taken against), and ``licentia serve --workers
1`` twice, each on a fresh embedded database in a temporary directory: one holding 100 000
licenses, one holding 1 000. Seeds them through the owner
connection with COPY (an organization, a product, a tier with 3 seats, a "floating" tier with
seats to spare for the activation run), pre-activates one machine on each of up to 10 000
licenses, then runs wrk (32 connections, ``--duration`` seconds each) against:

- ``GET /health/live`` of the bare app (the baseline) and of Licentia (the middleware's cost);
- validate with an existing key and its activated fingerprint (``wrk/validate.lua`` picks a
  random pair per request), on the 100 000 and on the 1 000 database;
- activate with a fingerprint never seen before (``wrk/activate.lua``), round-robin over
  2 000 floating licenses;
- check-in of an activated machine (``wrk/check_in.lua``).

The endpoints are interleaved in every run; the table shows medians over ``--runs`` runs (rates,
latencies, and per-run ratios to the same run's ceiling), and the worker's resident memory
(VmRSS) read after the load. ``--write-docs`` replaces the "## Server load" section of
docs/benchmarks.md (a hand-written part below ``<!-- bench:notes -->`` is kept).

``--metrics-cost`` instead runs validate against two copies of the same application on one
database, one with metrics on (``LICENTIA_METRICS_TOKEN`` set, a scrape every second) and one
without, interleaved, and writes "## Metrics cost".

``--compare-servers`` instead runs the same application under uvicorn (uvloop + httptools, as
``licentia serve`` does) and under granian (ASGI interface, when installed), one worker each,
on ``/health/live`` and validate, interleaved, and writes "## Server choice".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
WRK_DIR = HERE / "wrk"
DOCS = ROOT / "docs" / "benchmarks.md"
PRODUCT = "bench_app"
ACTIVATE_LICENSES = 2_000
PREACTIVATED = 10_000


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LICENTIA_")}
    return env | {"LICENTIA_LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}


@dataclass
class Server:
    name: str
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def worker_pids(self) -> list[int]:
        """The serving processes: the children that are not PostgreSQL, else the process."""
        children = [pid for pid in descendants(self.process.pid) if process_name(pid) != "postgres"]
        workers = [pid for pid in children if "python" in process_name(pid).lower()]
        return workers or [self.process.pid]

    def rss_mb(self) -> float:
        return max(rss_kb(pid) for pid in self.worker_pids()) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        found.extend(children)
        frontier.extend(children)
    return found


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def wait_ready(server: Server, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} exited:\n{server.log_path.read_text()[-3000:]}")
        try:
            if httpx.get(server.base_url + "/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not become ready:\n{server.log_path.read_text()[-3000:]}")


def start_process(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> Server:
    port = free_port()
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", process, log_path)
    wait_ready(server)
    return server


def start_licentia(name: str, data_dir: Path, workdir: Path) -> Server:
    argv = [sys.executable, "-m", "server.cli", "serve", "--workers", "1", "--port", "{port}"]
    return start_process(name, [*argv, "--data-dir", str(data_dir)], base_env(), workdir)


UVICORN = """
import uvicorn
uvicorn.run("server.app:app_from_env", factory=True, host="127.0.0.1", port={port},
            workers=1, log_config=None, access_log=False, server_header=False)
"""

BARE = """
import uvicorn
from litestar import Litestar, get

@get("/health/live", cache=False)
async def live() -> dict[str, str]:
    return {"status": "ok"}

uvicorn.run(Litestar([live]), host="127.0.0.1", port={port}, workers=1, log_config=None,
            access_log=False, server_header=False)
"""

GRANIAN = """
from granian import Granian
from granian.constants import Interfaces
Granian("server.app:app_from_env", factory=True, address="127.0.0.1", port={port},
        interface=Interfaces.ASGI, workers=1, log_enabled=False).serve()
"""


# --- data ----------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    licenses: int
    data_dir: Path
    validate_file: Path = field(init=False)
    activate_file: Path = field(init=False)

    def __post_init__(self) -> None:
        self.validate_file = self.data_dir / "validate.txt"
        self.activate_file = self.data_dir / "activate.txt"


def database_urls(data_dir: Path) -> tuple[str, str, str]:
    """(runtime, owner, kek) of the embedded instance a running server started."""
    from server import embedded

    instance = embedded.start(data_dir)  # attaches to the running instance
    return instance.runtime_url, instance.owner_url, instance.key_encryption_key


def seed(dataset: Dataset) -> None:
    import asyncpg

    from keys.tokens import fingerprint_hash
    from server.license_admin.facts import new_license_key

    _, owner_url, _ = database_urls(dataset.data_dir)
    started = time.perf_counter()
    org, product = uuid.uuid4(), uuid.uuid4()
    pro, floating = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    lease = now + timedelta(days=7)
    features = json.dumps({"export": True, "seats_report": True, "max_projects": 10})
    keys: list[tuple[uuid.UUID, str, bytes, str]] = []
    records = []
    for i in range(dataset.licenses):
        key, prefix, key_hash = new_license_key()
        license_id = uuid.uuid4()
        tier = floating if i < ACTIVATE_LICENSES else pro
        keys.append((license_id, key, key_hash, prefix))
        records.append((license_id, org, product, tier, key_hash, prefix))
    preactivated = keys[ACTIVATE_LICENSES:][:PREACTIVATED] or keys[:PREACTIVATED]
    activations, lines = [], []
    for i, (license_id, key, _, _) in enumerate(preactivated):
        fingerprint = f"bench-machine-{i:06d}"
        activations.append(
            (uuid.uuid4(), org, license_id, fingerprint_hash(fingerprint), "bench", now, now, lease)
        )
        lines.append(f"{key} {fingerprint}")
    dataset.validate_file.write_text("\n".join(lines) + "\n")
    dataset.activate_file.write_text(
        "\n".join(key for _, key, _, _ in keys[:ACTIVATE_LICENSES]) + "\n"
    )

    async def load() -> None:
        conn = await asyncpg.connect(owner_url)
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO organizations (id, name) VALUES ($1, 'Bench Org')", org
                )
                await conn.execute(
                    "INSERT INTO products (id, code, name) VALUES ($1, $2, 'Bench App')",
                    product,
                    PRODUCT,
                )
                await conn.executemany(
                    "INSERT INTO tiers (id, product_id, code, name, features, max_activations)"
                    " VALUES ($1, $2, $3, $3, $4::jsonb, $5)",
                    [
                        (pro, product, "pro", features, 3),
                        (floating, product, "floating", features, 1_000_000),
                    ],
                )
                await conn.copy_records_to_table(
                    "licenses",
                    records=records,
                    columns=[
                        "id",
                        "organization_id",
                        "product_id",
                        "tier_id",
                        "key_hash",
                        "key_prefix",
                    ],
                )
                await conn.copy_records_to_table(
                    "activations",
                    records=activations,
                    columns=[
                        "id",
                        "organization_id",
                        "license_id",
                        "fingerprint_hash",
                        "name",
                        "activated_at",
                        "last_check_in_at",
                        "lease_expires_at",
                    ],
                )
            await conn.execute("VACUUM ANALYZE licenses")
            await conn.execute("VACUUM ANALYZE activations")
        finally:
            await conn.close()

    asyncio.run(load())
    print(
        f"seeded {dataset.name}: {dataset.licenses} licenses, {len(activations)} activations "
        f"in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )


# --- wrk -----------------------------------------------------------------------------------


@dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float = 0.0
    """CPU time (user + system) the serving process spent per request during the run."""


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(
    url: str,
    script: str,
    args: list[str],
    duration: int,
    connections: int,
    pids: list[int] | None = None,
) -> Result:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_DIR / script),
        url,
    ]
    if args:
        argv += ["--", *args]
    cpu_before = cpu_seconds(pids or [])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    cpu_used = cpu_seconds(pids or []) - cpu_before
    match = re.search(r"^BENCH (\{.*\})$", out.stdout, re.MULTILINE)
    if out.returncode != 0 or not match:
        raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(match.group(1))
    errors = sum(data[k] for k in ("status_errors", "connect_errors", "read_errors", "timeouts"))
    return Result(
        rate=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        cpu_us=cpu_used * 1e6 / max(1, data["requests"]),
    )


Scenario = tuple[str, Callable[[int, int], Result]]


def run_rounds(scenarios: list[Scenario], runs: int, duration: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {name: [] for name, _ in scenarios}
    for run in range(runs):
        for name, call in scenarios:
            result = call(run, duration)
            results[name].append(result)
            print(
                f"run {run + 1}/{runs} {name:22} {result.rate:9.0f} req/s  p50 "
                f"{result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}  "
                f"CPU {result.cpu_us:5.0f} µs/req",
                file=sys.stderr,
            )
    return results


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(results: dict[str, list[Result]], name: str, base: str) -> float:
    """Median over runs of the per-run ratio (both measured in the same run)."""
    return median([a.rate / b.rate for a, b in zip(results[name], results[base], strict=True)])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs (`nproc`), {cpu}; {platform.system()} {platform.machine()}; "
        f"Python {platform.python_version()}; wrk and the server on the same machine"
    )


def write_section(title: str, body: str) -> None:
    notes_marker = "<!-- bench:notes -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(title + "\n")
    notes = ""
    if start == -1:
        before, after = text.rstrip("\n") + "\n\n", ""
    else:
        end = text.find("\n## ", start + len(title))
        end = len(text) if end == -1 else end + 1
        old = text[start:end]
        if notes_marker in old:
            notes = old[old.index(notes_marker) :].rstrip("\n") + "\n"
        before, after = text[:start], text[end:]
    section = f"{title}\n\n{body}\n" + ("\n" + notes if notes else "")
    DOCS.write_text(before + section + ("\n" + after if after else ""))
    print(f"updated {DOCS.relative_to(ROOT)}", file=sys.stderr)


def fmt_rate(results: list[Result]) -> str:
    return f"{median([r.rate for r in results]):,.0f}"


def fmt_lat(results: list[Result]) -> str:
    p50 = median([r.p50_ms for r in results])
    p99 = median([r.p99_ms for r in results])
    return f"{p50:.1f} / {p99:.1f}"


def fmt_cpu(results: list[Result]) -> str:
    return f"{median([r.cpu_us for r in results]):,.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


# --- the two benchmarks -------------------------------------------------------------------


def load_benchmark(args: argparse.Namespace, workdir: Path) -> str:
    big = Dataset("100k", args.licenses, workdir / "big")
    small = Dataset("1k", args.small, workdir / "small")
    servers: list[Server] = []
    try:
        for dataset in (big, small):
            server = start_licentia(f"serve-{dataset.name}", dataset.data_dir, workdir)
            servers.append(server)
            seed(dataset)
        server, small_server = servers
        bare = start_process("bare", [sys.executable, "-c", BARE], base_env(), workdir)
        servers.append(bare)
        conns = args.connections

        def wrk(target: Server, script: str, extra: list[str]) -> Callable[[int, int], Result]:
            pids = target.worker_pids()
            return lambda run, duration: run_wrk(
                target.base_url + ("/health/live" if script == "report.lua" else ""),
                script,
                [a.replace("{run}", f"r{run}{uuid.uuid4().hex[:6]}") for a in extra],
                duration,
                conns,
                pids,
            )

        scenarios: list[Scenario] = [
            ("bare", wrk(bare, "report.lua", [])),
            ("health", wrk(server, "report.lua", [])),
            ("validate", wrk(server, "validate.lua", [str(big.validate_file), PRODUCT])),
            ("validate_1k", wrk(small_server, "validate.lua", [str(small.validate_file), PRODUCT])),
            ("activate", wrk(server, "activate.lua", [str(big.activate_file), PRODUCT, "{run}"])),
            ("check_in", wrk(server, "check_in.lua", [str(big.validate_file), PRODUCT])),
        ]
        # Warm up both servers (imports, pools, prepared statements) before measuring.
        for _name, call in scenarios:
            call(99, 2)
        results = run_rounds(scenarios, args.runs, args.duration)
        rss = server.rss_mb()
        rss_small = small_server.rss_mb()
    finally:
        for server in servers:
            server.stop()

    baseline = results["bare"]
    rows = [
        "| Endpoint | req/s | p50 / p99 ms | vs bare app | Target | | server CPU µs/req "
        "(bare / this) |",
        "|---|---|---|---|---|---|---|",
        f"| bare Litestar app, `GET` small JSON (baseline) | {fmt_rate(baseline)} "
        f"| {fmt_lat(baseline)} | 1.00 | | | {fmt_cpu(baseline)} (1.00) |",
    ]
    targets = {"health": 0.8, "validate": 0.25, "activate": 0.15, "check_in": 0.15}
    labels = {
        "health": "`GET /health/live`",
        "validate": "validate, 100 000 licenses",
        "validate_1k": "validate, 1 000 licenses",
        "activate": "activate, new fingerprints",
        "check_in": "check-in",
    }
    for name, label in labels.items():
        r = results[name]
        share = ratio(results, name, "bare")
        target, ok = "", ""
        if name in targets:
            tail = median([x.p99_ms / x.p50_ms for x in r])
            target = f"≥ {targets[name]:.2f}x" + (", p99 ≤ 3x p50" if name == "validate" else "")
            met = share >= targets[name] and (name != "validate" or tail <= 3)
            ok = verdict(met) + (f" (p99 = {tail:.1f}x p50)" if name == "validate" else "")
        errors = sum(x.errors for x in r)
        note = f" ({errors} errors)" if errors else ""
        cpu_share = median(
            [b.cpu_us / x.cpu_us for x, b in zip(r, baseline, strict=True) if x.cpu_us]
        )
        rows.append(
            f"| {label}{note} | {fmt_rate(r)} | {fmt_lat(r)} | {share:.2f} | {target} | {ok} "
            f"| {fmt_cpu(r)} ({cpu_share:.2f}) |"
        )
    scale = ratio(results, "validate", "validate_1k")
    rows.append(
        f"| validate 100 000 / 1 000 | | | {scale:.2f}x | ≥ 0.9x | {verdict(scale >= 0.9)} | |"
    )
    rows.append(
        f"| worker RSS after load (100 000 / 1 000) | | | {rss:.0f} / {rss_small:.0f} MB "
        f"| < 150 MB | {verdict(max(rss, rss_small) < 150)} | |"
    )
    header = (
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d}.\n\n"
        f"`licentia serve --workers 1` on a fresh embedded PostgreSQL per data set, and a bare "
        "Litestar app (one `GET` answering a small JSON; uvicorn + uvloop + httptools, one "
        f"worker) as the baseline; wrk, 1 thread, {args.connections} connections, "
        f"{args.duration} s per endpoint; the endpoints are interleaved in each of {args.runs} "
        "runs (after a short warm-up), and the table shows medians over runs (ratios: median "
        "of the per-run ratios to the bare app in the same run). The last column is the CPU "
        "time the serving process spent per request (user + system, from /proc) and, in "
        "parentheses, the bare app's divided by it: the throughput ratio the server's own cost "
        "allows when PostgreSQL and wrk are not competing for its core. Produced by `uv run "
        "python tests/benchmarks/bench_server.py --write-docs`.\n"
    )
    return header + "\n" + "\n".join(rows) + "\n"


def compare_servers(args: argparse.Namespace, workdir: Path) -> str:
    dataset = Dataset("100k", args.licenses, workdir / "big")
    servers: list[Server] = []
    try:
        host = start_licentia("serve-db", dataset.data_dir, workdir)  # keeps the database up
        servers.append(host)
        seed(dataset)
        runtime, owner, kek = database_urls(dataset.data_dir)
        env = base_env() | {
            "LICENTIA_DATABASE_URL": runtime,
            "LICENTIA_MIGRATION_DATABASE_URL": owner,
            "LICENTIA_KEY_ENCRYPTION_KEY": kek,
        }
        kinds = ["uvicorn", "granian"]
        code = {"uvicorn": UVICORN, "granian": GRANIAN}
        apps = {}
        for kind in kinds:
            apps[kind] = start_process(kind, [sys.executable, "-c", code[kind]], env, workdir)
            servers.append(apps[kind])
        conns = args.connections
        scenarios: list[Scenario] = []
        for kind in kinds:
            url = apps[kind].base_url
            scenarios.append(
                (
                    f"health_{kind}",
                    lambda run, d, url=url: run_wrk(
                        url + "/health/live", "report.lua", [], d, conns
                    ),
                )
            )
        for kind in kinds:
            url = apps[kind].base_url
            scenarios.append(
                (
                    f"validate_{kind}",
                    lambda run, d, url=url: run_wrk(
                        url, "validate.lua", [str(dataset.validate_file), PRODUCT], d, conns
                    ),
                )
            )
        for _, call in scenarios:
            call(99, 2)
        results = run_rounds(scenarios, args.runs, args.duration)
        rss = {kind: apps[kind].rss_mb() for kind in kinds}
    finally:
        for server in reversed(servers):
            server.stop()

    import granian

    rows = [
        "| Endpoint | uvicorn req/s (p50 / p99 ms) | granian req/s (p50 / p99 ms) "
        "| granian / uvicorn |",
        "|---|---|---|---|",
    ]
    for endpoint, label in (("health", "`GET /health/live`"), ("validate", "validate")):
        u, g = results[f"{endpoint}_uvicorn"], results[f"{endpoint}_granian"]
        rows.append(
            f"| {label} | {fmt_rate(u)} ({fmt_lat(u)}) | {fmt_rate(g)} ({fmt_lat(g)}) | "
            f"{ratio(results, f'{endpoint}_granian', f'{endpoint}_uvicorn'):.2f}x |"
        )
    rows.append(f"| worker RSS after load | {rss['uvicorn']:.0f} MB | {rss['granian']:.0f} MB | |")
    import uvicorn

    header = (
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d}.\n\n"
        f"The same application (`server.app:app_from_env`), one worker each, on one database "
        f"of {args.licenses:,} licenses: uvicorn {uvicorn.__version__} (uvloop + httptools) and "
        f"granian {granian.__version__} (ASGI interface); wrk, {args.connections} connections, "
        f"{args.duration} s per endpoint, interleaved, medians of {args.runs} runs. Produced "
        "by `uv run python tests/benchmarks/bench_server.py --compare-servers --write-docs` "
        "(with granian installed).\n"
    )
    return header + "\n" + "\n".join(rows) + "\n"


def metrics_cost(args: argparse.Namespace, workdir: Path) -> str:
    dataset = Dataset("metrics", args.licenses, workdir / "metrics")
    servers: list[Server] = []
    token = "bench-metrics-token"
    try:
        host = start_licentia("serve-db", dataset.data_dir, workdir)  # keeps the database up
        servers.append(host)
        seed(dataset)
        runtime, owner, kek = database_urls(dataset.data_dir)
        env = base_env() | {
            "LICENTIA_DATABASE_URL": runtime,
            "LICENTIA_MIGRATION_DATABASE_URL": owner,
            "LICENTIA_KEY_ENCRYPTION_KEY": kek,
        }
        apps = {
            "off": start_process("metrics-off", [sys.executable, "-c", UVICORN], env, workdir),
            "on": start_process(
                "metrics-on",
                [sys.executable, "-c", UVICORN],
                env | {"LICENTIA_METRICS_TOKEN": token},
                workdir,
            ),
        }
        servers.extend(apps.values())
        scraping = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import httpx, sys, time\n"
                "while True:\n"
                "    httpx.get(sys.argv[1] + '/metrics', headers={'Authorization': "
                "'Bearer ' + sys.argv[2]}, timeout=5); time.sleep(1)",
                apps["on"].base_url,
                token,
            ]
        )
        conns = args.connections
        scenarios: list[Scenario] = []
        for kind in ("off", "on"):
            url, pids = apps[kind].base_url, apps[kind].worker_pids()
            scenarios.append(
                (
                    f"validate_{kind}",
                    lambda run, d, url=url, pids=pids: run_wrk(
                        url, "validate.lua", [str(dataset.validate_file), PRODUCT], d, conns, pids
                    ),
                )
            )
        try:
            for _, call in scenarios:
                call(99, 2)
            results = run_rounds(scenarios, args.runs, args.duration)
        finally:
            scraping.kill()
            scraping.wait()
    finally:
        for server in reversed(servers):
            server.stop()
    off, on = results["validate_off"], results["validate_on"]
    rate = ratio(results, "validate_on", "validate_off")
    cpu = median([b.cpu_us / a.cpu_us for a, b in zip(on, off, strict=True) if a.cpu_us])
    rows = [
        "| validate | req/s | p50 / p99 ms | server CPU µs/req |",
        "|---|---|---|---|",
        f"| metrics off | {fmt_rate(off)} | {fmt_lat(off)} | {fmt_cpu(off)} |",
        f"| metrics on, scraped every second | {fmt_rate(on)} | {fmt_lat(on)} | {fmt_cpu(on)} |",
        f"| on / off | {rate:.2f}x | | {cpu:.2f}x (CPU off / on) |",
        f"| target: on ≥ 0.97x off | {verdict(rate >= 0.97)} (throughput) | "
        f"| {verdict(cpu >= 0.97)} (CPU per request) |",
    ]
    header = (
        f"Machine: {machine()}. Date: {datetime.now(UTC):%Y-%m-%d}.\n\n"
        "The same application (`server.app:app_from_env`, uvicorn, one worker) twice on one "
        f"database of {args.licenses:,} licenses, with and without `LICENTIA_METRICS_TOKEN` "
        "(the one with metrics scraped every second); validate with wrk, "
        f"{args.connections} connections, {args.duration} s each, interleaved, medians of "
        f"{args.runs} runs. On a shared machine the throughput ratio moves with whatever else "
        "runs; the CPU time each server spent per request is the steadier figure. Produced by "
        "`uv run python tests/benchmarks/bench_server.py --metrics-cost --write-docs`.\n"
    )
    return header + "\n" + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per endpoint")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--licenses", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=1_000, help="licenses of the small set")
    parser.add_argument("--compare-servers", action="store_true")
    parser.add_argument("--metrics-cost", action="store_true")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "bench_server.py needs wrk (https://github.com/wg/wrk): `apt-get install wrk` on "
            "Debian/Ubuntu, `brew install wrk` on macOS.",
            file=sys.stderr,
        )
        return 2
    if args.compare_servers:
        try:
            import granian  # noqa: F401
        except ImportError:
            print("--compare-servers needs granian: `uv pip install granian`", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="licentia-bench-"))
    try:
        if args.metrics_cost:
            body, title = metrics_cost(args, workdir), "## Metrics cost"
        elif args.compare_servers:
            body, title = compare_servers(args, workdir), "## Server choice"
        else:
            body, title = load_benchmark(args, workdir), "## Server load"
        print(body)
        if args.write_docs:
            write_section(title, body)
    finally:
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

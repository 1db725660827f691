"""Prometheus metrics: the instruments, their exposition, and the sharing across workers.

With ``--workers N`` every worker is its own process. ``licentia serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start; each worker then
writes its counters and histograms to memory-mapped files there, and a scrape (answered by
any worker) sums the files of every worker that ever ran, so a counter never jumps back
when another worker answers. Without that variable (one process, the tests) the values live
in memory.

What the database says (seats in use, licenses by status, the signing keys' times) is read
at most every ``DATABASE_STATS_SECONDS`` by whichever worker is scraped first after that,
and kept in one small file beside the workers' files (in memory with one process), so the
other workers answer from it without a query.
"""

from __future__ import annotations

import asyncio
import functools
import glob
import logging
import os
import re
import tempfile
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

# ``prometheus_client`` chooses in-memory or file-backed values when it is first imported;
# only this module imports it, so the choice and ``MULTIPROCESS`` always agree.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS = bool(os.environ.get(MULTIPROCESS_ENV))

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

log = logging.getLogger("licentia.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
DATABASE_STATS_SECONDS = 30.0
POOL_WATCH_SECONDS = 5.0
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (a 404 or 405 on an unknown path): raw
paths would give the counter a label value per probe a scanner sends."""

REQUESTS = Counter(
    "licentia_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "licentia_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LICENSING_OUTCOMES = Counter(
    "licentia_licensing_outcomes",
    "Product licensing calls by operation and outcome code (VALID, EXPIRED, CREATED, "
    "ACTIVATION_LIMIT, ...)",
    ["operation", "code"],
)
THROTTLED = Counter(
    "licentia_throttled",
    "Calls refused by a rate limit: unknown license keys from one address, failed logins",
    ["limit"],
)
UNKNOWN_LICENSE_KEYS = Counter(
    "licentia_unknown_license_keys",
    "Product licensing calls that named a license key no license has",
)
POOL_IN_USE = Gauge(
    "licentia_db_pool_connections_in_use",
    "Database connections checked out of a pool, summed over the workers",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "licentia_db_pool_waiting",
    "Requests waiting for a connection of a full pool, summed over the workers",
    ["pool"],
    multiprocess_mode="livesum",
)


_enabled = False


def enable(on: bool) -> None:
    """Count or not (``create_app``: on when ``LICENTIA_METRICS_TOKEN`` is set). Off, the
    counting calls return at once: a server nobody scrapes pays nothing."""
    global _enabled
    _enabled = on


# --- requests (the access-log middleware calls this once per request) --------------------

_request_children: dict[tuple[str, str, int], tuple[Any, Any, list[Any], list[float]]] = {}


def _request_child(route: str, method: str, status: int) -> tuple[Any, Any, list[Any], list[float]]:
    """The value cells of one (route, method, status): the counter's, and the histogram's
    sum, buckets and bounds. prometheus_client's own ``inc``/``observe`` check arguments and
    walk the buckets in Python on every call; the cells (``prometheus_client.values``, an
    in-memory or a memory-mapped float) are what they end up incrementing."""
    counter = REQUESTS.labels(route, method, str(status))
    histogram = LATENCY.labels(route)
    cells = (
        counter._value.inc,
        histogram._sum.inc,
        [bucket.inc for bucket in histogram._buckets],
        list(histogram._upper_bounds),
    )
    _request_children[(route, method, status)] = cells
    return cells


def observe_request(route: str | None, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration: one dict look-up, a binary search for
    the bucket (each observation lands in one; the exposition accumulates them), and three
    increments."""
    route = route or UNMATCHED_ROUTE
    cells = _request_children.get((route, method, status)) or _request_child(route, method, status)
    cells[0](1)
    cells[1](seconds)
    cells[2][bisect_left(cells[3], seconds)](1)


def licensing_outcome(operation: str, code: str) -> None:
    if _enabled:
        LICENSING_OUTCOMES.labels(operation, code).inc()


def throttled(limit: str) -> None:
    if _enabled:
        THROTTLED.labels(limit).inc()


def unknown_license_key() -> None:
    if _enabled:
        UNKNOWN_LICENSE_KEYS.inc()


# --- database pools (each worker, every few seconds) --------------------------------------


def _waiters(queue: object) -> int:
    """How many tasks wait on an asyncio queue; its waiters are not public, so 0 when the
    attribute is not there (a pool implementation that changed)."""
    return len(getattr(queue, "_getters", ()))


def sqlalchemy_pool_usage(engine: Any) -> tuple[int, int]:
    pool = engine.pool
    in_use = int(pool.checkedout()) if hasattr(pool, "checkedout") else 0
    inner = getattr(pool, "_pool", None)
    queue = getattr(inner, "_queue", None) if inner is not None else None
    return in_use, _waiters(queue)


def asyncpg_pool_usage(pool: Any) -> tuple[int, int]:
    turns = getattr(pool, "turns", None)  # the licensing pool queues its waiters itself
    waiting = turns.waiting if turns is not None else _waiters(getattr(pool, "_queue", None))
    return pool.get_size() - pool.get_idle_size(), waiting


async def watch_pools(
    pools: Callable[[], Iterable[tuple[str, tuple[int, int]]]],
    every_seconds: float = POOL_WATCH_SECONDS,
) -> None:
    """Set this worker's pool gauges from ``pools()`` until cancelled."""
    while True:
        try:
            for name, (in_use, waiting) in pools():
                POOL_IN_USE.labels(name).set(in_use)
                POOL_WAITING.labels(name).set(waiting)
        except Exception as exc:  # a pool being closed; next round
            log.debug("pool gauges: %s", type(exc).__name__)
        await asyncio.sleep(every_seconds)


# --- what the database says, shared by the workers ----------------------------------------


class DatabaseStats(msgspec.Struct, frozen=True):
    """One read of the database's state; times are Unix seconds."""

    read_at: float
    up: bool
    seats_in_use: int | None = None
    licenses_by_status: dict[str, int] = {}
    signing_key_activated_at: float | None = None
    next_key_activation_at: float | None = None


class StatsStore:
    """The last ``DatabaseStats`` and whether it is due for a new read: a file in the
    multiprocess directory (written whole, then renamed) or, with one process, memory."""

    def __init__(self, directory: str | None) -> None:
        self.path = os.path.join(directory, "database-stats.json") if directory else None
        self._memory: DatabaseStats | None = None
        self._claimed_at = 0.0

    def load(self) -> DatabaseStats | None:
        if self.path is None:
            return self._memory
        try:
            with open(self.path, "rb") as handle:
                return msgspec.json.decode(handle.read(), type=DatabaseStats)
        except (OSError, msgspec.DecodeError):
            return None

    def claim(self, now: float, every_seconds: float = DATABASE_STATS_SECONDS) -> bool:
        """Whether this caller should read the database now. The claim is written at once
        (the file's mtime), so the other workers scraped in the next ``every_seconds``
        answer from the last read instead of querying too."""
        if self.path is None:
            if now - self._claimed_at < every_seconds:
                return False
            self._claimed_at = now
            return True
        try:
            claimed_at = os.stat(self.path).st_mtime
        except OSError:
            claimed_at = 0.0
        if now - claimed_at < every_seconds:
            return False
        self._claimed_at = now
        with open(self.path, "ab"):  # the first read ever: the file exists from now on
            pass
        os.utime(self.path, (now, now))
        return True

    def store(self, stats: DatabaseStats) -> None:
        if self.path is None:
            self._memory = stats
            return
        temporary = f"{self.path}.{os.getpid()}"
        with open(temporary, "wb") as handle:
            handle.write(msgspec.json.encode(stats))
        # The file's time stays the claim's: the next read is due 30 s after it was claimed.
        os.utime(temporary, (self._claimed_at, self._claimed_at))
        os.replace(temporary, self.path)


class _DatabaseCollector(Collector):
    def __init__(self, stats: DatabaseStats | None, now: float) -> None:
        self.stats = stats
        self.now = now

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        up = GaugeMetricFamily(
            "licentia_database_up",
            "1 when the last read of the database's state succeeded (at most every 30 s)",
        )
        up.add_metric([], 1.0 if stats is not None and stats.up else 0.0)
        yield up
        if stats is None:
            return
        age = GaugeMetricFamily(
            "licentia_database_stats_age_seconds", "How old the database figures below are"
        )
        age.add_metric([], max(0.0, self.now - stats.read_at))
        yield age
        if stats.seats_in_use is not None:
            seats = GaugeMetricFamily(
                "licentia_seats_in_use", "Activations holding a seat, over every license"
            )
            seats.add_metric([], float(stats.seats_in_use))
            yield seats
        if stats.licenses_by_status:
            licenses = GaugeMetricFamily(
                "licentia_licenses", "Licenses by status", labels=["status"]
            )
            for status, count in sorted(stats.licenses_by_status.items()):
                licenses.add_metric([status], float(count))
            yield licenses
        if stats.signing_key_activated_at is not None:
            key_age = GaugeMetricFamily(
                "licentia_signing_key_age_seconds", "Time since the active signing key activated"
            )
            key_age.add_metric([], max(0.0, self.now - stats.signing_key_activated_at))
            yield key_age
        if stats.next_key_activation_at is not None:
            next_activation = GaugeMetricFamily(
                "licentia_signing_key_next_activation_seconds",
                "Time until the next scheduled signing-key activation (absent when none)",
            )
            next_activation.add_metric([], max(0.0, stats.next_key_activation_at - self.now))
            yield next_activation


# --- process figures of every live worker --------------------------------------------------

_WORKER_FILE = re.compile(r"_(\d+)\.db$")


def _worker_pids(directory: str) -> list[int]:
    pids = set()
    for path in glob.glob(os.path.join(directory, "*.db")):
        match = _WORKER_FILE.search(path)
        if match and os.path.exists(f"/proc/{match.group(1)}"):
            pids.add(int(match.group(1)))
    return sorted(pids)


class _WorkerProcesses(Collector):
    """The default process collector (CPU, memory, open files), once per live worker with a
    ``pid`` label: in multiprocess mode the scraped worker alone would be shown otherwise,
    a different one at each scrape."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in _worker_pids(self.directory):
            collector = ProcessCollector(pid=functools.partial(str, pid), registry=None)
            for family in collector.collect():
                merged = families.get(family.name)
                if merged is None:
                    merged = Metric(family.name, family.documentation, family.type)
                    families[family.name] = merged
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()


# --- the exposition --------------------------------------------------------------------


def multiprocess_directory() -> str | None:
    return os.environ.get(MULTIPROCESS_ENV) if MULTIPROCESS else None


def exposition(stats: DatabaseStats | None) -> bytes:
    """The Prometheus text format: every worker's counters, histograms and pool gauges, the
    database figures, and the process figures."""
    now = time.time()
    directory = multiprocess_directory()
    if directory is None:
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY) + generate_latest(_single(_DatabaseCollector(stats, now)))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(_WorkerProcesses(directory))
    PlatformCollector(registry=registry)
    registry.register(_DatabaseCollector(stats, now))
    return generate_latest(registry)


def _single(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def prepare_multiprocess_directory(environ: dict[str, str] | Any = os.environ) -> str:
    """For ``licentia serve``: a fresh directory for the workers' files, or the one the
    operator named, emptied (files of an earlier run would be summed in)."""
    directory = environ.get(MULTIPROCESS_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith((".db", ".json")):
                os.unlink(os.path.join(directory, name))
    else:
        directory = tempfile.mkdtemp(prefix="licentia-metrics-")
    environ[MULTIPROCESS_ENV] = directory
    return directory


def worker_exits() -> None:
    """A worker stops: its live-summed gauges (pool use) leave the sum; its counters stay."""
    if MULTIPROCESS:
        multiprocess.mark_process_dead(os.getpid())

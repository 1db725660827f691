"""The webhook dispatcher: runs in every ``licentia serve`` worker (and replica), fans the
outbox's events out to the endpoints that listen, delivers them, and notices the expiries no
request reports.

- **Fan-out.** A request writes one row per event (the trigger of migration 0006); each
  round, one process at a time (an advisory lock) takes the events not yet fanned out in
  ``position`` order, gives each license event the license's next ``sequence``, writes one
  delivery per endpoint listening, and marks the events fanned out: one statement, one
  transaction, so a crash leaves an event either pending (fanned out later) or complete.
- **Claims.** One statement claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and sets a
  lease (``locked_until``, longer than an attempt can last); another process skips them while
  the lease runs, so no delivery is attempted twice at the same time. A process killed
  mid-attempt leaves the lease to run out; then anyone claims the delivery again.
- **Fairness.** Each endpoint has at most ``webhook_concurrency_per_endpoint`` attempts in
  flight (counted across processes from the leases), claimed per endpoint, so one slow or dead
  endpoint never holds up the others.
- **Attempts.** Re-resolve and re-check the URL's address (DNS rebinding), connect to that
  address, POST with a short total timeout and no redirects; any 2xx is delivered; anything
  else is retried (``service.next_attempt``), and an endpoint failing for 5 days is disabled
  with a ``webhook_endpoint.disabled`` audit event.
- **Scans.** Once a minute (one process at a time, an advisory lock): licenses about to
  expire and expired, and seats whose lease ran out, are written as audit events once
  each; the outbox trigger turns them into webhook events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from keys.webhooks import signature_header
from server import license_rules as rules
from server.audit import service as audit
from server.audit.service import Actor
from server.errors import InvalidInput
from server.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from server.settings import Settings
from server.webhooks import addresses
from server.webhooks.schemas import TestOutcome
from server.webhooks.service import (
    create_test_event,
    listens_sql,
    next_attempt,
    render,
    should_disable,
    signing_secrets,
)

log = logging.getLogger("licentia.webhooks")

SCAN_EVERY_SECONDS = 60.0
USER_AGENT = "Licentia-Webhooks/1"
_EVERY_TENANT = text("SELECT set_config('app.platform_admin', 'on', true)")


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def new_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,  # no proxy from the environment: the address checked is the one used
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )


async def send(
    client: httpx.AsyncClient,
    url: str,
    secrets: list[str],
    msg_id: str,
    body: bytes,
    *,
    timeout: float,
    allow_insecure: bool,
    allow_private: bool,
) -> Outcome:
    """One attempt. Never raises for the endpoint's sake: the outcome says what happened."""
    try:
        target = await addresses.check(
            url, allow_insecure=allow_insecure, allow_private=allow_private
        )
    except InvalidInput as exc:
        return Outcome(None, exc.code)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    try:
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST", target.connect_url, content=body, headers=headers, extensions=extensions
            )
            response = await client.send(request, stream=True)
            await response.aclose()  # the answer's body is not needed
    except TimeoutError:
        return Outcome(None, "timeout")
    except httpx.HTTPError as exc:
        return Outcome(None, type(exc).__name__)
    status = response.status_code
    return Outcome(status, None if 200 <= status < 300 else f"HTTP {status}")


async def record_outcome(
    session: AsyncSession, delivery: WebhookDelivery, endpoint: WebhookEndpoint, outcome: Outcome
) -> None:
    """Write an attempt's result (in the caller's transaction): delivered, or when to try
    again (or given up); an endpoint failing for 5 days is disabled, audited."""
    now = datetime.now(UTC)
    delivery.attempts += 1
    delivery.last_attempt_at = now
    delivery.last_status = outcome.status
    delivery.last_error = outcome.error
    delivery.locked_until = None
    if outcome.delivered:
        delivery.delivered_at = now
        if endpoint.failing_since is not None:
            endpoint.failing_since = None
        await session.flush()
        return
    retry_at = next_attempt(delivery.attempts, delivery.created_at, now)
    if retry_at is None:
        delivery.failed_at = now
    else:
        delivery.next_attempt_at = retry_at
    if endpoint.failing_since is None:
        endpoint.failing_since = now
    elif endpoint.enabled and should_disable(endpoint.failing_since, now):
        endpoint.enabled = False
        endpoint.disabled_reason = "failing"
        await audit.record(
            session,
            None,
            "webhook_endpoint.disabled",
            "webhook_endpoint",
            endpoint.id,
            data={"failing_since": endpoint.failing_since.isoformat(), "url": endpoint.url},
        )
        log.warning("webhook endpoint disabled after 5 days of failures: %s", endpoint.id)
    await session.flush()


_CLAIM = text(
    """
    UPDATE webhook_deliveries d SET locked_until = now() + make_interval(secs => :lease)
    FROM (
        SELECT due.id FROM webhook_endpoints e
        CROSS JOIN LATERAL (
            SELECT d2.id, d2.next_attempt_at FROM webhook_deliveries d2
            WHERE d2.endpoint_id = e.id AND d2.delivered_at IS NULL AND d2.failed_at IS NULL
              AND d2.next_attempt_at <= now()
              AND (d2.locked_until IS NULL OR d2.locked_until <= now())
            ORDER BY d2.next_attempt_at, d2.id
            LIMIT greatest(0, :per_endpoint - (
                SELECT count(*) FROM webhook_deliveries b
                WHERE b.endpoint_id = e.id AND b.locked_until > now()))
            FOR UPDATE OF d2 SKIP LOCKED
        ) due
        WHERE e.enabled
        ORDER BY due.next_attempt_at
        LIMIT :limit
    ) picked
    WHERE d.id = picked.id
    RETURNING d.id
    """
)


FAN_OUT_BATCH = 1000
_FAN_OUT_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('licentia.webhooks.fan_out'))")

# Per license, the sequence follows ``position``: a value drawn by the trigger while the
# change holds the license's row lock (an activation's ``FOR UPDATE``, an admin change's
# ``UPDATE``, a seat freed under the lock), so for changes made one after the other it
# follows their order, and such an event cannot commit after a later one was numbered. Only
# changes that do not wait for each other (the scans below against an admin edit) may be
# numbered either way. An endpoint gets the events that happened once it existed, while it
# is enabled when the fan-out runs (within a poll interval of the commit while a dispatcher
# runs).
_FAN_OUT = text(
    f"""
    WITH pending AS (
        SELECT ev.id, ev.license_id, ev.position FROM webhook_events ev
        WHERE ev.fanned_out_at IS NULL
        ORDER BY ev.position
        LIMIT :limit
    ), numbered AS (
        SELECT p.id, CASE WHEN p.license_id IS NOT NULL THEN coalesce(s.seq, 0)
                   + row_number() OVER (PARTITION BY p.license_id ORDER BY p.position) END AS seq
        FROM pending p LEFT JOIN webhook_sequences s ON s.license_id = p.license_id
    ), marked AS (
        UPDATE webhook_events ev SET sequence = numbered.seq, fanned_out_at = now()
        FROM numbered WHERE ev.id = numbered.id
        RETURNING ev.id, ev.position, ev.type, ev.organization_id, ev.license_id, ev.sequence,
                  ev.occurred_at
    ), counted AS (
        INSERT INTO webhook_sequences AS s (license_id, seq)
        SELECT license_id, max(sequence) FROM marked WHERE license_id IS NOT NULL
        GROUP BY license_id
        ON CONFLICT (license_id) DO UPDATE SET seq = excluded.seq
    ), fanned AS (
        INSERT INTO webhook_deliveries (event_id, endpoint_id)
        SELECT m.id, e.id FROM marked m JOIN webhook_endpoints e
            ON {listens_sql("m.type", "m.organization_id")}
               AND e.created_at <= m.occurred_at
        ORDER BY m.position, e.id
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM marked), (SELECT count(*) FROM fanned)
    """
)


async def fan_out(engine: AsyncEngine, limit: int = FAN_OUT_BATCH) -> tuple[int, int]:
    """Fan out up to ``limit`` pending events: (events, deliveries written). One process at
    a time; (0, 0) when another one is at it."""
    async with engine.begin() as connection:
        if not (await connection.execute(_FAN_OUT_LOCK)).scalar():
            return 0, 0
        row = (await connection.execute(_FAN_OUT, {"limit": limit})).one()
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class Claimed:
    delivery: WebhookDelivery
    event: WebhookEvent
    endpoint: WebhookEndpoint


_DELIVERED = text(
    """
    WITH done AS (
        UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = now(),
            last_status = codes.status, last_error = NULL, delivered_at = now(),
            locked_until = NULL
        FROM unnest(CAST(:ids AS bigint[]), CAST(:codes AS integer[])) AS codes (id, status)
        WHERE webhook_deliveries.id = codes.id
        RETURNING endpoint_id
    )
    UPDATE webhook_endpoints SET failing_since = NULL
    WHERE id IN (SELECT endpoint_id FROM done) AND failing_since IS NOT NULL
    """
)


class Dispatcher:
    """One per process. Claims in batches (one transaction: the claim and what the attempts
    need), attempts concurrently, and writes the successes of a round in one statement."""

    def __init__(self, engine: AsyncEngine, kek: bytes, settings: Settings) -> None:
        self.engine = engine
        self.kek = kek
        self.settings = settings
        self.client = new_client()
        self.lease_seconds = settings.webhook_timeout_seconds * 2 + 10
        self.in_flight: set[asyncio.Task[None]] = set()
        self.delivered: list[tuple[int, int]] = []
        self.wake = asyncio.Event()
        self.next_scan = 0.0

    async def run(self) -> None:
        """Until cancelled; a failed round is logged and tried again, never fatal."""
        try:
            while True:
                claimed: list[Claimed] = []
                # cleared before the round, not after it: an attempt that ends during the
                # round (and frees a slot) wakes the next one instead of being missed
                self.wake.clear()
                try:
                    await self.record_delivered()
                    if time.monotonic() >= self.next_scan:
                        self.next_scan = time.monotonic() + SCAN_EVERY_SECONDS
                        await scan(self.engine)
                    await fan_out(self.engine)
                    free = self.settings.webhook_concurrency - len(self.in_flight)
                    if free > 0:
                        claimed = await self.claim(free)
                except Exception as exc:  # the database may be away; try again later
                    log.warning("webhook dispatcher round failed: %s", type(exc).__name__)
                for item in claimed:
                    task = asyncio.create_task(self.attempt(item))
                    self.in_flight.add(task)
                    task.add_done_callback(self._done)
                if not claimed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.settings.webhook_poll_seconds)
        finally:
            for task in self.in_flight:
                task.cancel()
            await self.client.aclose()

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)
        self.wake.set()

    async def claim(self, limit: int) -> list[Claimed]:
        session = AsyncSession(self.engine, expire_on_commit=False)
        async with session, session.begin():
            ids = list(
                await session.scalars(
                    _CLAIM,
                    {
                        "lease": self.lease_seconds,
                        "per_endpoint": self.settings.webhook_concurrency_per_endpoint,
                        "limit": limit,
                    },
                )
            )
            if not ids:
                return []
            rows = await session.execute(
                select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
                .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(WebhookDelivery.id.in_(ids))
            )
            return [Claimed(*row) for row in rows]

    async def record_delivered(self) -> None:
        """The round's successes, in one statement (kept for the next round on failure)."""
        if not self.delivered:
            return
        done, self.delivered = self.delivered, []
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    _DELIVERED, {"ids": [d for d, _ in done], "codes": [c for _, c in done]}
                )
        except Exception:
            self.delivered.extend(done)
            raise

    async def attempt(self, item: Claimed) -> None:
        try:
            outcome = await deliver(self.client, self.settings, self.kek, item.event, item.endpoint)
            if outcome.delivered:
                assert outcome.status is not None
                self.delivered.append((item.delivery.id, outcome.status))
                return
            session = AsyncSession(self.engine, expire_on_commit=False)
            async with session, session.begin():
                # lock and reload: the rows may have changed meanwhile (a retry request)
                delivery = await session.get(
                    WebhookDelivery, item.delivery.id, with_for_update=True
                )
                endpoint = await session.get(
                    WebhookEndpoint, item.endpoint.id, with_for_update=True
                )
                if delivery is not None and endpoint is not None:
                    await record_outcome(session, delivery, endpoint, outcome)
        except Exception as exc:  # the lease runs out and the delivery is claimed again
            log.warning("webhook delivery %s failed: %s", item.delivery.id, type(exc).__name__)


async def deliver(
    client: httpx.AsyncClient,
    settings: Settings,
    kek: bytes,
    event: WebhookEvent,
    endpoint: WebhookEndpoint,
) -> Outcome:
    """Render, sign and send one event to one endpoint."""
    body = render(event)
    secrets = signing_secrets(endpoint, kek, datetime.now(UTC))
    return await send(
        client,
        endpoint.url,
        secrets,
        str(event.id),
        body,
        timeout=settings.webhook_timeout_seconds,
        allow_insecure=settings.webhook_allow_insecure,
        allow_private=settings.webhook_allow_private,
    )


# --- the scans: what happens with no request ------------------------------------------------

_SCAN_LOCK = text("SELECT pg_try_advisory_xact_lock(hashtext('licentia.webhooks.scan'))")


def _notice_sql(kind: str, due: str) -> str:
    """Licenses matching ``due`` noted once per (license, kind, expiry) and audited."""
    marked = (
        "marked AS (INSERT INTO license_expiry_notices (license_id, kind, expires_at) "
        f"SELECT id, '{kind}', expires_at FROM due ON CONFLICT DO NOTHING "
        "RETURNING license_id, expires_at)"
    )
    insert = audit.insert_select_sql(
        "marked JOIN due ON due.id = marked.license_id",
        organization_id="due.organization_id",
        target_id="marked.license_id::text",
        data="jsonb_build_object('expires_at', marked.expires_at)",
    )
    return f"WITH due AS ({due}), {marked} {insert}"


def _not_noted(kind: str) -> str:
    """Not yet noted for this expiry (so a batch limit never starves the rest)."""
    return (
        "NOT EXISTS (SELECT 1 FROM license_expiry_notices n WHERE n.license_id = l.id "
        f"AND n.kind = '{kind}' AND n.expires_at = l.expires_at)"
    )


_SHOWN = rules.shown_status_sql("l", "now()")
# Expired within the last week (older expiries predate the notices and are not announced).
_EXPIRED = _notice_sql(
    "expired",
    f"SELECT l.id, l.organization_id, l.expires_at FROM licenses l "
    f"WHERE l.expires_at > now() - interval '7 days' AND {_SHOWN} = 'expired' "
    f"AND {_not_noted('expired')} LIMIT 1000",
)
_EXPIRING = _notice_sql(
    "expiring",
    f"SELECT l.id, l.organization_id, l.expires_at FROM licenses l "
    f"JOIN tiers t ON t.id = l.tier_id "
    f"WHERE t.expiry_notice_days > 0 AND {_SHOWN} = 'active' "
    f"AND l.expires_at <= now() + make_interval(days => t.expiry_notice_days) "
    f"AND {_not_noted('expiring')} LIMIT 1000",
)
_STALE_SEATS = (
    "WITH stale AS (UPDATE activations a SET deactivated_at = now(), "
    f"deactivation_reason = '{rules.LEASE_EXPIRED}' "
    "WHERE a.id IN (SELECT a2.id FROM activations a2 JOIN licenses l ON l.id = a2.license_id "
    "JOIN tiers t ON t.id = l.tier_id "
    f"WHERE {rules.stale_seat_sql('a2', 't.lease_grace_days', 'now()')} "
    "LIMIT 1000 FOR UPDATE OF a2 SKIP LOCKED) "
    "RETURNING a.id, a.organization_id, a.license_id) "
    + audit.insert_select_sql(
        "stale",
        organization_id="stale.organization_id",
        target_id="stale.id::text",
        data="jsonb_build_object('license_id', stale.license_id)",
    )
)


async def scan(engine: AsyncEngine) -> dict[str, int]:
    """Note expiring and expired licenses and release seats whose lease (and grace) ran out,
    each audited once (so announced once). One process at a time; a no-op otherwise."""
    counts = {"expiring": 0, "expired": 0, "seats": 0}
    async with engine.begin() as connection:
        if not (await connection.execute(_SCAN_LOCK)).scalar():
            return counts
        await connection.execute(_EVERY_TENANT)
        for name, sql, action, target in (
            ("expiring", _EXPIRING, "license.expiring", "license"),
            ("expired", _EXPIRED, "license.expire", "license"),
            ("seats", _STALE_SEATS, "activation.expire", "activation"),
        ):
            event = audit.event(
                None,
                action,
                target,
                data={"reason": rules.LEASE_EXPIRED} if name == "seats" else {},
            )
            params = audit.insert_select_params(event)
            params["audit_data"] = json.dumps(params["audit_data"])
            result = await connection.execute(text(sql), params)
            counts[name] = result.rowcount or 0
    if any(counts.values()):
        log.info("webhook scan", extra=counts)
    return counts


async def send_test(
    session: AsyncSession, actor: Actor, settings: Settings, kek: bytes, endpoint_id: uuid.UUID
) -> TestOutcome:
    """A ``webhook.test`` event, sent at once (in the request, on purpose: the caller waits
    for the outcome); a failed attempt is retried like any other."""
    made = await create_test_event(session, actor, endpoint_id)
    async with new_client() as client:
        outcome = await deliver(client, settings, kek, made.event, made.endpoint)
    await record_outcome(session, made.delivery, made.endpoint, outcome)
    return TestOutcome(
        delivery_id=made.delivery.id,
        event_id=made.event.id,
        delivered=outcome.delivered,
        status_code=outcome.status,
        error=outcome.error,
    )

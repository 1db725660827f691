"""Webhook endpoints, their deliveries, the event payload and the retry rule.

Events are written by the ``audit_events`` trigger of migration 0006 (the outbox: one row in
the transaction of the change); ``server.webhooks.dispatcher`` fans them out to the endpoints
that listen and delivers them. This module holds what both the API and the dispatcher need:
the endpoint rules, how an event is rendered and signed, and when a failed delivery is tried
again.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keys.webhooks import decrypt_secret, encrypt_secret, new_secret
from server.audit.service import Actor, record
from server.auth.principal import Principal
from server.errors import InvalidInput, NotFound
from server.license_admin.schemas import ActivationRead
from server.license_admin.service import read_license
from server.license_rules import holds_seat
from server.models import Organization, WebhookDelivery, WebhookEndpoint, WebhookEvent
from server.pagination import Page, paginate
from server.settings import Settings
from server.signing_keys.schemas import SigningKeyRead
from server.webhooks import addresses
from server.webhooks.schemas import (
    EVENT_TYPES,
    DeliveryRead,
    EndpointCreate,
    EndpointCreated,
    EndpointRead,
    EndpointUpdate,
    Event,
    SecretRotated,
    TestOutcome,
)

ROTATION_OVERLAP = timedelta(hours=24)
"""After a rotation, deliveries are signed under the old secret too, this long."""
RETRY_WINDOW = timedelta(days=3)
"""A failing delivery is tried again for this long (the last attempt at the end of it)."""
DISABLE_AFTER = timedelta(days=5)
"""An endpoint whose deliveries failed without a success for this long is disabled."""
FIRST_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 4 * 3600.0

_PREFIXES = {t.split(".", 1)[0] for t in EVENT_TYPES}


def listens_sql(kind: str, organization_id: str) -> str:
    """SQL: endpoint ``e`` listens to an event of type ``kind`` of ``organization_id``: it is
    enabled, not limited to another organization, and its filter is empty or names the type
    or the type's prefix (``license.*``). The outbox trigger (migration 0006) holds a frozen
    copy (``listens("v_type", "NEW.organization_id")``: is anyone listening?); the fan-out
    uses this one (who?); tests/server/webhooks/test_events.py checks they are the same."""
    return f"""e.enabled
    AND (e.organization_id IS NULL OR e.organization_id = {organization_id})
    AND (cardinality(e.events) = 0 OR {kind} = ANY (e.events)
         OR split_part({kind}, '.', 1) || '.*' = ANY (e.events))"""


@dataclass(frozen=True)
class UrlPolicy:
    allow_insecure: bool
    allow_private: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(settings.webhook_allow_insecure, settings.webhook_allow_private)


# --- the retry rule ------------------------------------------------------------------------


def next_attempt(
    attempts: int, created_at: datetime, now: datetime, *, rand: float | None = None
) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or ``None`` when the retry
    window is over. Exponential (5 s, 10 s, 20 s, ... up to 4 h) with jitter (each delay
    drawn between half and all of it); the last attempt falls at the window's end."""
    end = created_at + RETRY_WINDOW
    if now >= end:
        return None
    delay = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, attempts - 1))
    jitter = random.random() if rand is None else rand
    return min(end, now + timedelta(seconds=delay * (0.5 + 0.5 * jitter)))


def should_disable(failing_since: datetime | None, now: datetime) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER


# --- the event payload ---------------------------------------------------------------------


class _LicenseSnapshot(msgspec.Struct):
    id: uuid.UUID
    key_prefix: str
    organization_id: uuid.UUID
    product: str
    tier: str
    status: str
    features: dict[str, Any]
    tier_features: dict[str, Any]
    max_activations: int | None
    tier_max_activations: int
    activations_count: int
    starts_at: datetime
    expires_at: datetime | None
    created_at: datetime
    metadata: dict[str, Any]
    expiry_behavior: str
    is_trial: bool
    # named-user seats (migration 0010); absent from the snapshots taken before it
    max_users: int | None = None
    tier_max_users: int | None = None
    seat_kind: str = "machine"


class _ActivationSnapshot(msgspec.Struct):
    id: uuid.UUID
    license_id: uuid.UUID
    fingerprint_hash: str
    name: str | None
    platform: str | None
    activated_at: datetime
    last_check_in_at: datetime
    lease_expires_at: datetime
    deactivated_at: datetime | None
    deactivation_reason: str | None
    lease_grace_days: int


NAMED_USER_EVENTS = frozenset({"license.user_assigned", "license.user_unassigned"})
"""Named-user seats (migration 0009): the license's representation plus ``user_id``."""
USAGE_RESET = "license.usage_reset"
"""A reset of usage meters (migration 0010): the license's representation plus ``reset``,
what was reset (``{"meters": {name: the count cleared}}``, the audit event's data)."""

DELETED_BY = {"license": "product", "user": "customer"}
"""Who freed a seat, by the audit actor: a product (with its license key), a customer (a
user of the organization), else an admin (an API key)."""


def _data(
    kind: str, subject: dict[str, Any], context: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """The object as the admin API shows it, as it was when the event happened."""
    family = kind.split(".", 1)[0]
    if family == "license":
        snap = msgspec.convert(subject, _LicenseSnapshot)
        data = msgspec.to_builtins(read_license(msgspec.structs.asdict(snap), at))
        if kind in NAMED_USER_EVENTS:  # which user was assigned or unassigned
            data["user_id"] = context.get("user_id")
        elif kind == USAGE_RESET:  # which meters, and the counts they had
            data["reset"] = context.get("reset", {})
        return data
    if family == "activation":
        act = msgspec.convert(subject, _ActivationSnapshot)
        fields = msgspec.structs.asdict(act)
        grace = fields.pop("lease_grace_days")
        seat = holds_seat(act.deactivated_at, act.lease_expires_at, grace, at)
        data = msgspec.to_builtins(ActivationRead(**fields, holds_seat=seat))
        if kind == "activation.deleted":
            data["deleted_by"] = DELETED_BY.get(str(context.get("actor_type")), "admin")
        return data
    if family == "signing_key":
        return msgspec.to_builtins(msgspec.convert(subject, SigningKeyRead))
    return dict(subject)


def render(event: WebhookEvent) -> bytes:
    """The body POSTed for ``event``: the same bytes at every attempt."""
    return msgspec.json.encode(
        Event(
            id=str(event.id),
            type=event.type,
            timestamp=event.occurred_at,
            organization_id=event.organization_id,
            sequence=event.sequence,
            data=_data(event.type, event.subject, event.context, event.occurred_at),
        )
    )


def signing_secrets(endpoint: WebhookEndpoint, kek: bytes, now: datetime) -> list[str]:
    """The current secret, and the previous one during the rotation overlap."""
    found = [decrypt_secret(kek, endpoint.secret, str(endpoint.id))]
    if (
        endpoint.previous_secret is not None
        and endpoint.previous_secret_until is not None
        and endpoint.previous_secret_until > now
    ):
        found.append(decrypt_secret(kek, endpoint.previous_secret, str(endpoint.id)))
    return found


# --- endpoints -----------------------------------------------------------------------------


def _read(row: WebhookEndpoint) -> EndpointRead:
    return EndpointRead(**{f: getattr(row, f) for f in EndpointRead.__struct_fields__})


def _check_events(events: list[str]) -> list[str]:
    for name in events:
        known = name in EVENT_TYPES or (name.endswith(".*") and name[:-2] in _PREFIXES)
        if not known:
            raise InvalidInput(f"Unknown event type {name!r}", code="UNKNOWN_EVENT_TYPE")
    return sorted(set(events))


async def _check_url(url: str, policy: UrlPolicy) -> str:
    await addresses.check(
        url, allow_insecure=policy.allow_insecure, allow_private=policy.allow_private
    )
    return url


async def _endpoint(session: AsyncSession, endpoint_id: uuid.UUID, *, lock: bool = False) -> Any:
    query = select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFound("No such webhook endpoint", code="WEBHOOK_ENDPOINT_NOT_FOUND")
    return row


async def create_endpoint(
    session: AsyncSession, actor: Actor, kek: bytes, policy: UrlPolicy, data: EndpointCreate
) -> EndpointCreated:
    """Save an endpoint and return it with its signing secret (shown only here)."""
    events = _check_events(data.events)
    url = await _check_url(data.url, policy)
    if data.organization_id is not None:
        found = await session.scalar(
            select(Organization.id).where(Organization.id == data.organization_id)
        )
        if found is None:
            raise InvalidInput("No such organization", code="UNKNOWN_ORGANIZATION")
    endpoint_id = uuid.uuid4()
    secret = new_secret()
    row = WebhookEndpoint(
        id=endpoint_id,
        organization_id=data.organization_id,
        url=url,
        description=data.description,
        events=events,
        enabled=True,
        secret=encrypt_secret(kek, secret, str(endpoint_id)),
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)
    await record(
        session,
        actor,
        "webhook_endpoint.create",
        "webhook_endpoint",
        endpoint_id,
        data={"url": url, "events": events},
    )
    return EndpointCreated(**msgspec.structs.asdict(_read(row)), secret=secret)


async def list_endpoints(
    session: AsyncSession, *, limit: int, cursor: str | None
) -> Page[EndpointRead]:
    page = await paginate(
        session,
        select(WebhookEndpoint),
        WebhookEndpoint.created_at,
        WebhookEndpoint.id,
        limit,
        cursor,
    )
    return Page(items=[_read(row) for row in page.items], next_cursor=page.next_cursor)


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> EndpointRead:
    return _read(await _endpoint(session, endpoint_id))


async def update_endpoint(
    session: AsyncSession,
    actor: Actor,
    policy: UrlPolicy,
    endpoint_id: uuid.UUID,
    data: EndpointUpdate,
) -> EndpointRead:
    row = await _endpoint(session, endpoint_id, lock=True)
    changed: list[str] = []
    if data.url is not msgspec.UNSET:
        row.url = await _check_url(data.url, policy)
        changed.append("url")
    if data.events is not msgspec.UNSET:
        row.events = _check_events(data.events)
        changed.append("events")
    if data.description is not msgspec.UNSET:
        row.description = data.description
        changed.append("description")
    if data.enabled is not msgspec.UNSET and data.enabled != row.enabled:
        row.enabled = data.enabled
        row.disabled_reason = None if data.enabled else "manual"
        row.failing_since = None
        changed.append("enabled")
    if changed:
        row.updated_at = func.now()
        await session.flush()
        await session.refresh(row)
        await record(
            session,
            actor,
            "webhook_endpoint.update",
            "webhook_endpoint",
            endpoint_id,
            data={"fields": changed},
        )
    return _read(row)


async def delete_endpoint(session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID) -> None:
    row = await _endpoint(session, endpoint_id, lock=True)
    await session.delete(row)
    await session.flush()
    await record(session, actor, "webhook_endpoint.delete", "webhook_endpoint", endpoint_id)


async def rotate_secret(
    session: AsyncSession, actor: Actor, kek: bytes, endpoint_id: uuid.UUID
) -> SecretRotated:
    """A new secret; the old one keeps signing (alongside) for 24 hours."""
    row = await _endpoint(session, endpoint_id, lock=True)
    now = datetime.now(UTC)
    secret = new_secret()
    row.previous_secret = row.secret
    row.previous_secret_until = now + ROTATION_OVERLAP
    row.secret = encrypt_secret(kek, secret, str(endpoint_id))
    row.updated_at = now
    await session.flush()
    await record(session, actor, "webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint_id)
    return SecretRotated(secret=secret, previous_secret_until=now + ROTATION_OVERLAP)


# --- deliveries ----------------------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    cursor: str | None,
    newest_first: bool = False,
) -> Page[DeliveryRead]:
    """Oldest first (newest first with ``newest_first``)."""
    await _endpoint(session, endpoint_id)
    page = await paginate(
        session,
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id),
        WebhookDelivery.created_at,
        WebhookDelivery.id,
        limit,
        cursor,
        newest_first=newest_first,
    )
    ids = [d.event_id for d in page.items]
    types = (
        dict(
            (
                await session.execute(
                    select(WebhookEvent.id, WebhookEvent.type).where(WebhookEvent.id.in_(ids))
                )
            ).all()
        )
        if ids
        else {}
    )
    return Page(
        items=[
            DeliveryRead(
                id=d.id,
                event_id=d.event_id,
                type=types.get(d.event_id, ""),
                attempts=d.attempts,
                last_status=d.last_status,
                last_error=d.last_error,
                next_attempt_at=(None if d.delivered_at or d.failed_at else d.next_attempt_at),
                delivered_at=d.delivered_at,
                failed_at=d.failed_at,
                created_at=d.created_at,
            )
            for d in page.items
        ],
        next_cursor=page.next_cursor,
    )


async def retry_delivery(session: AsyncSession, actor: Actor, delivery_id: int) -> None:
    """Try a delivery again now (a delivered one is sent once more; its retry window
    starts again)."""
    found = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(
            next_attempt_at=func.now(),
            created_at=func.now(),
            failed_at=None,
            delivered_at=None,
        )
        .returning(WebhookDelivery.id)
    )
    if found.first() is None:
        raise NotFound("No such webhook delivery", code="WEBHOOK_DELIVERY_NOT_FOUND")
    await record(session, actor, "webhook_delivery.retry", "webhook_delivery", delivery_id)


@dataclass(frozen=True)
class TestDelivery:
    __test__ = False  # not a test class, despite the name

    delivery: WebhookDelivery
    event: WebhookEvent
    endpoint: WebhookEndpoint


async def create_test_event(
    session: AsyncSession, actor: Actor, endpoint_id: uuid.UUID
) -> TestDelivery:
    """A ``webhook.test`` event and its delivery to this endpoint (enabled or not)."""
    endpoint = await _endpoint(session, endpoint_id)
    event_id = uuid.uuid4()
    now = datetime.now(UTC)
    await session.execute(
        insert(WebhookEvent).values(
            id=event_id,
            type="webhook.test",
            organization_id=endpoint.organization_id,
            occurred_at=now,
            fanned_out_at=now,  # its one delivery is written here, not by the fan-out
            subject={"endpoint_id": str(endpoint_id), "message": "A test event from Licentia"},
            context={"actor": list(actor.actor if isinstance(actor, Principal) else actor or ())},
        )
    )
    delivery = WebhookDelivery(event_id=event_id, endpoint_id=endpoint_id, next_attempt_at=now)
    session.add(delivery)
    await session.flush()
    await session.refresh(delivery)
    event = await session.get(WebhookEvent, event_id)
    assert event is not None
    await record(session, actor, "webhook_endpoint.test", "webhook_endpoint", endpoint_id)
    return TestDelivery(delivery, event, endpoint)


async def send_test(
    session: AsyncSession, actor: Actor, settings: Settings, kek: bytes, endpoint_id: uuid.UUID
) -> TestOutcome:
    """A ``webhook.test`` event sent at once, its outcome answered: the dispatcher's
    ``send_test``, published here for the pages (a domain reads another's service only)."""
    from server.webhooks import dispatcher  # the dispatcher imports this module

    return await dispatcher.send_test(session, actor, settings, kek, endpoint_id)

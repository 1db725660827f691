"""Requests and responses of the webhook API, and the event payload."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from server.validation import Line

EVENT_TYPES = (
    "license.created",
    "license.updated",
    "license.suspended",
    "license.reinstated",
    "license.revoked",
    "license.renewed",
    "license.tier_changed",
    "license.expiring",
    "license.expired",
    "license.user_assigned",
    "license.user_unassigned",
    "license.usage_reset",
    "activation.created",
    "activation.deleted",
    "activation.expired",
    "signing_key.rotated",
    "signing_key.revoked",
    "webhook.test",
)
"""Every event type; the audit actions that emit them are mapped in migration 0006 (and, for
the named-user events, 0009; for ``license.usage_reset``, 0010)."""

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=2000, pattern=r"^[^\x00-\x20\x7f]*$")]
EventFilter = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z_]+(\.[a-z_]+|\.\*)$",
        description="An event type (`license.revoked`) or a prefix (`license.*`)",
    ),
]
Events = Annotated[list[EventFilter], msgspec.Meta(max_length=32)]
Description = Annotated[Line, msgspec.Meta(max_length=500)]


class EndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: Url
    events: Events = msgspec.field(default_factory=list)
    """Event types or prefixes; empty means every event."""
    organization_id: uuid.UUID | None = None
    """Only this customer organization's events (deployment-wide events, such as signing
    key rotations, go only to endpoints without an organization)."""
    description: Description = ""


class EndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Only the fields present change."""

    url: Url | msgspec.UnsetType = msgspec.UNSET
    events: Events | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class EndpointRead(msgspec.Struct):
    id: uuid.UUID
    url: str
    events: list[str]
    organization_id: uuid.UUID | None
    description: str
    enabled: bool
    disabled_reason: str | None
    """``failing`` when the dispatcher disabled it after 5 days of failed deliveries."""
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointRead):
    secret: str
    """The signing secret (``whsec_...``). Shown only in this response."""


class SecretRotated(msgspec.Struct):
    secret: str
    """The new signing secret, shown only here. For 24 hours deliveries carry signatures
    under the old and the new secret."""
    previous_secret_until: datetime


class DeliveryRead(msgspec.Struct):
    id: int
    event_id: uuid.UUID
    type: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    """``null`` once delivered or given up."""
    delivered_at: datetime | None
    failed_at: datetime | None
    """When retries ran out (after 3 days); ``POST .../retry`` starts again."""
    created_at: datetime


class TestOutcome(msgspec.Struct):
    __test__ = False  # not a test class, despite the name

    delivery_id: int
    event_id: uuid.UUID
    delivered: bool
    status_code: int | None
    error: str | None


class Event(msgspec.Struct):
    """The body POSTed to an endpoint."""

    id: str
    type: str
    timestamp: datetime
    organization_id: uuid.UUID | None
    sequence: int | None
    """Per license, increasing: order a license's events by it."""
    data: dict[str, Any]

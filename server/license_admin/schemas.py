"""Requests and responses of license management."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from server.products.schemas import Code, Days, Features, Seats
from server.signing_keys.schemas import KeyCertificate, KeyRevocations, RootEndorsements
from server.validation import AwareDateTime, DatedRequest, SafeStr

Status = Literal["active", "suspended", "revoked", "expired"]
MetadataKey = Annotated[SafeStr, msgspec.Meta(min_length=1, max_length=64)]
Metadata = Annotated[
    dict[MetadataKey, Any],
    msgspec.Meta(
        max_length=50,
        description="Free-form JSON object for the vendor (e.g. a billing reference), up to 8 KiB",
        examples=[{"order": "INV-2027-0042"}],
    ),
]


class LicenseCreate(DatedRequest, forbid_unknown_fields=True):
    organization_id: uuid.UUID
    product: Code
    tier: Code
    expires_at: AwareDateTime | None = None
    """Default: now + ``duration_days``, else the tier's duration; neither = perpetual."""
    duration_days: Days | None = None
    max_activations: Seats | None = None
    """Overrides the tier's seat count."""
    max_users: Seats | None = None
    """Overrides the tier's ``max_users`` (a tier whose ``seat_kind`` is ``user`` only)."""
    features: Features = msgspec.field(default_factory=dict)
    """Overlaid on the tier's features."""
    metadata: Metadata = msgspec.field(default_factory=dict)
    allow_repeat_trial: bool = False
    """Issue a trial-tier license even if the organization already had one of the product."""


class ChangeTierRequest(DatedRequest, forbid_unknown_fields=True):
    """Move a license to another tier of its product, keeping its id, key and machines."""

    tier: Code
    product: Code | None = None
    """Only the license's own product is accepted (422 PRODUCT_CHANGE_UNSUPPORTED)."""
    expires_at: AwareDateTime | msgspec.UnsetType | None = msgspec.UNSET
    """Absent: unchanged; ``null``: perpetual."""
    max_activations: Seats | msgspec.UnsetType | None = msgspec.UNSET
    """Absent: the license's own override is kept; ``null``: the new tier's seats."""
    max_users: Seats | msgspec.UnsetType | None = msgspec.UNSET
    """Absent: the license's own override is kept; ``null``: the new tier's ``max_users``."""
    release: Literal["least_recently_seen"] | None = None
    """When more machines are live than the new seat count: free the extra seats, those
    checked in least recently first. Without it the change is refused (409 SEATS_IN_USE)."""


class LicenseUpdate(DatedRequest, forbid_unknown_fields=True):
    """Only the fields present change; ``null`` clears an override (back to the tier's)."""

    expires_at: AwareDateTime | msgspec.UnsetType | None = msgspec.UNSET
    max_activations: Seats | msgspec.UnsetType | None = msgspec.UNSET
    max_users: Seats | msgspec.UnsetType | None = msgspec.UNSET
    """Named users (a ``user`` tier's license); never fewer than the users assigned."""
    features: Features | msgspec.UnsetType = msgspec.UNSET
    metadata: Metadata | msgspec.UnsetType = msgspec.UNSET


class RenewRequest(DatedRequest, forbid_unknown_fields=True):
    """Exactly one of ``expires_at`` (a later date) or ``duration_days`` (added to the
    current expiry, or to now when the license has already expired)."""

    expires_at: AwareDateTime | None = None
    duration_days: Days | None = None


class LicenseRead(msgspec.Struct):
    id: uuid.UUID
    key_prefix: str
    organization_id: uuid.UUID
    product: str
    tier: str
    status: Status
    features: dict[str, Any]
    """The tier's features overlaid by the license's own."""
    max_activations: int
    max_users: int | None
    """How many members may be assigned (named users): the license's own, else its tier's;
    ``null`` when its tier counts machines (``seat_kind`` ``machine``)."""
    activations_count: int
    """Machines holding a seat now (lease not yet past its grace period)."""
    starts_at: datetime
    expires_at: datetime | None
    created_at: datetime
    metadata: dict[str, Any]
    updates_until: datetime | None
    """Perpetual fallback: the last release date covered (its tier's ``expiry_behavior`` is
    ``fallback``); ``null`` otherwise."""
    is_trial: bool


class LicenseCreated(LicenseRead):
    key: str
    """The license key. Shown only in this response; it is stored as a hash."""


class LicenseToken(msgspec.Struct):
    token: str
    """A signed ``license+jwt`` (Ed25519) for offline use, not bound to a machine."""
    expires_at: datetime
    key_certificate: KeyCertificate
    key_revocations: KeyRevocations
    root_endorsements: RootEndorsements


class ActivationRead(msgspec.Struct):
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
    holds_seat: bool
    """Not deactivated and its lease (plus the tier's grace days) has not run out."""
    user_id: uuid.UUID | None = None
    """The named user the seat is bound to (licenses of a ``user`` tier)."""

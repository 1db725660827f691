"""Products and tiers: the catalog licenses are issued against.

Also home of the small types shared with license management (feature maps, problem
responses for the OpenAPI document).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from server.license_rules import DEFAULT_MACHINES_PER_USER, DEFAULT_MAX_DEACTIVATIONS_PER_DAY
from server.validation import NO_NUL

MAX_SAFE_INT = 2**53 - 1

Code = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="Lowercase slug: a letter, then letters, digits, '_' or '-'",
        examples=["local_cli"],
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
FeatureName = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
FeatureValue = (
    bool
    | Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]
    | float
    | Annotated[str, msgspec.Meta(max_length=1000, pattern=NO_NUL)]
)
Features = Annotated[
    dict[FeatureName, FeatureValue],
    msgspec.Meta(
        max_length=200,
        description="Feature name -> true/false, a number or a string",
        examples=[{"sso": True, "max_projects": 50, "support": "email"}],
    ),
]
Seats = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
Days = Annotated[int, msgspec.Meta(ge=1, le=36_500)]
GraceDays = Annotated[int, msgspec.Meta(ge=0, le=3_650)]
DailyLimit = Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
NoticeDays = Annotated[int, msgspec.Meta(ge=0, le=365)]
ExpiryBehavior = Annotated[
    Literal["restrict", "fallback"],
    msgspec.Meta(
        description=(
            "After the license's expiry: `restrict` refuses it; `fallback` (perpetual "
            "fallback) keeps it working for builds released until the expiry "
            "(`updates_until`)"
        )
    ),
]

# named-user seats
SeatKind = Annotated[
    Literal["machine", "user"],
    msgspec.Meta(
        description=(
            "`machine`: a seat is a machine (`max_activations`); `user`: named users "
            "(`max_users`) are assigned to a license, each activating up to "
            "`machines_per_user` machines with their access token"
        )
    ),
]
MachinesPerUser = Annotated[int, msgspec.Meta(ge=1, le=1_000_000)]


# --- usage meters (server.metering) ---------------------------------------------------------


class MeterSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A meter of a tier: at most ``limit`` units per ``period``."""

    limit: Annotated[int, msgspec.Meta(ge=0, le=MAX_SAFE_INT)]
    """Also the tier's feature of the meter's name: a license overrides it in its ``features``."""
    period: Literal["day", "month"] | None = None
    """``day`` or ``month`` (UTC; the count starts from zero in each new period by itself), or
    ``null``: the units never come back unless given back or reset."""


Meters = Annotated[
    dict[FeatureName, MeterSpec],
    msgspec.Meta(
        max_length=50,
        description=(
            "Meter name -> its limit and period; the names share the feature namespace and "
            "the limits appear in `features`"
        ),
        examples=[{"automations": {"limit": 100, "period": "month"}, "installs": {"limit": 50}}],
    ),
]


class ProductCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name


class ProductUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET


class ProductRead(msgspec.Struct):
    id: uuid.UUID
    code: str
    name: str
    created_at: datetime
    updated_at: datetime


class TierCreate(msgspec.Struct, forbid_unknown_fields=True):
    code: Code
    name: Name
    max_activations: Seats
    features: Features = msgspec.field(default_factory=dict)
    duration_days: Days | None = None
    """``null``: licenses of this tier are perpetual unless the license says otherwise."""
    offline_lease_days: Days = 7
    lease_grace_days: GraceDays = 7
    max_deactivations_per_day: DailyLimit = DEFAULT_MAX_DEACTIVATIONS_PER_DAY
    """Deactivations the customer may make per license in any 24 hours (docs/api.md)."""
    expiry_notice_days: NoticeDays = 14
    """Days before expiry the ``license.expiring`` webhook event is sent (0: never)."""
    is_trial: bool = False
    """A trial tier: its licenses and tokens say so (``trial: true``), and an organization
    gets one trial license per product unless the issue says ``allow_repeat_trial``."""
    self_serve_trials: bool = False
    """Offer keyless machine trials of the product on this tier (``POST /api/v1/trials``):
    a trial tier with a ``duration_days``; one such tier per product."""
    expiry_behavior: ExpiryBehavior = "restrict"
    meters: Meters = msgspec.field(default_factory=dict)
    # named-user seats
    seat_kind: SeatKind = "machine"
    max_users: Seats | None = None
    """Users that may be assigned to one license; required for a ``user`` tier."""
    machines_per_user: MachinesPerUser = DEFAULT_MACHINES_PER_USER


class TierUpdate(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    features: Features | msgspec.UnsetType = msgspec.UNSET
    max_activations: Seats | msgspec.UnsetType = msgspec.UNSET
    duration_days: Days | msgspec.UnsetType | None = msgspec.UNSET
    offline_lease_days: Days | msgspec.UnsetType = msgspec.UNSET
    lease_grace_days: GraceDays | msgspec.UnsetType = msgspec.UNSET
    max_deactivations_per_day: DailyLimit | msgspec.UnsetType = msgspec.UNSET
    expiry_notice_days: NoticeDays | msgspec.UnsetType = msgspec.UNSET
    is_trial: bool | msgspec.UnsetType = msgspec.UNSET
    self_serve_trials: bool | msgspec.UnsetType = msgspec.UNSET
    expiry_behavior: ExpiryBehavior | msgspec.UnsetType = msgspec.UNSET
    meters: Meters | msgspec.UnsetType = msgspec.UNSET
    """Replaces the tier's meters (their limits in ``features`` with them)."""
    # named-user seats
    seat_kind: SeatKind | msgspec.UnsetType = msgspec.UNSET
    max_users: Seats | msgspec.UnsetType | None = msgspec.UNSET
    machines_per_user: MachinesPerUser | msgspec.UnsetType = msgspec.UNSET


class TierRead(msgspec.Struct):
    id: uuid.UUID
    product: str
    code: str
    name: str
    features: dict[str, Any]
    max_activations: int
    duration_days: int | None
    offline_lease_days: int
    lease_grace_days: int
    max_deactivations_per_day: int
    expiry_notice_days: int
    is_trial: bool
    self_serve_trials: bool
    expiry_behavior: str
    created_at: datetime
    updated_at: datetime
    meters: dict[str, MeterSpec] = msgspec.field(default_factory=dict)
    # named-user seats
    seat_kind: str = "machine"
    max_users: int | None = None
    machines_per_user: int = DEFAULT_MACHINES_PER_USER


def changes(update: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body actually sets (``UNSET`` ones are left out)."""
    return {
        name: getattr(update, name)
        for name in update.__struct_fields__
        if getattr(update, name) is not msgspec.UNSET
    }

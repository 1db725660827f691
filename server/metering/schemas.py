"""Requests and responses of usage metering: consuming units (products) and reading or
resetting a license's usage (admins, and the license's organization for reading)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from server.product_licensing.schemas import Fingerprint, LicenseKey, ProductCode
from server.products.schemas import MAX_SAFE_INT, FeatureName
from server.signing_keys.schemas import KeyCertificate, KeyRevocations, RootEndorsements

MeterName = FeatureName
Amount = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INT, le=MAX_SAFE_INT)]


class UsageRequest(msgspec.Struct, forbid_unknown_fields=True):
    license_key: LicenseKey
    product: ProductCode
    meter: MeterName
    amount: Amount = 1
    """Units to consume; negative gives units back (the count never goes below zero); 0 reads
    the count with a fresh token."""
    fingerprint: Fingerprint | None = None
    """When given, only a machine holding a live seat of the license may consume
    (``NOT_ACTIVATED`` otherwise)."""


class UsageResponse(msgspec.Struct):
    meter: str
    used: int
    limit: int
    remaining: int
    period_ends_at: datetime | None
    """When the count starts again from zero (``null``: never)."""
    token: str
    """A ``usage+jwt`` saying the same (docs/token-format.md)."""
    key_certificate: KeyCertificate
    key_revocations: KeyRevocations
    root_endorsements: RootEndorsements


class PeriodUsage(msgspec.Struct):
    period_start: datetime | None
    period_ends_at: datetime | None
    used: int


class MeterUsage(msgspec.Struct):
    meter: str
    period: Literal["day", "month"] | None
    limit: int
    used: int
    """In the current period."""
    remaining: int
    period_start: datetime | None
    period_ends_at: datetime | None
    history: list[PeriodUsage]
    """Past periods, newest first (at most ``HISTORY_PERIODS``)."""


class LicenseUsage(msgspec.Struct):
    license_id: uuid.UUID
    meters: list[MeterUsage]


class UsageReset(msgspec.Struct, forbid_unknown_fields=True):
    meter: MeterName | None = None
    """The meter whose current period starts again from zero; ``null``: every meter."""

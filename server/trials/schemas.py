"""Requests and responses of keyless machine trials."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from server.product_licensing.schemas import Fingerprint, MachineName, Platform, ProductCode
from server.signing_keys.schemas import KeyCertificate, KeyRevocations, RootEndorsements

TrialStatus = Literal["running", "ended", "converted"]


class TrialRequest(msgspec.Struct, forbid_unknown_fields=True):
    product: ProductCode
    fingerprint: Fingerprint
    """The machine fingerprint; only its SHA-256 is stored and put in the token."""
    name: MachineName | None = None
    platform: Platform | None = None


class TrialStarted(msgspec.Struct):
    trial_id: uuid.UUID
    product: str
    tier: str
    features: dict[str, Any]
    token: str
    """An ``activation+jwt`` with ``trial: true`` whose ``exp`` is the trial's end."""
    trial_ends_at: datetime
    key_certificate: KeyCertificate
    key_revocations: KeyRevocations
    root_endorsements: RootEndorsements


class TrialRead(msgspec.Struct):
    id: uuid.UUID
    product: str
    tier: str
    fingerprint_hash: str
    name: str | None
    platform: str | None
    started_at: datetime
    ends_at: datetime
    status: TrialStatus
    converted_at: datetime | None
    converted_license_id: uuid.UUID | None
    converted_organization_id: uuid.UUID | None


class TrialCounts(msgspec.Struct):
    running: int
    ended: int
    converted: int
    total: int
    conversion_rate: float | None
    """converted / total, ``null`` when there is no trial."""


class TrialPage(msgspec.Struct):
    items: list[TrialRead]
    next_cursor: str | None
    counts: TrialCounts
    """Over every trial matching ``product`` (whatever ``status`` selects)."""

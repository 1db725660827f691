"""Requests and responses of the product-facing licensing API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from server.signing_keys.schemas import KeyCertificate, KeyRevocations, RootEndorsements
from server.validation import Line

LicenseKey = Annotated[Line, msgspec.Meta(min_length=1, max_length=128)]
ProductCode = Annotated[Line, msgspec.Meta(min_length=1, max_length=64)]
Fingerprint = Annotated[Line, msgspec.Meta(min_length=1, max_length=256)]
Nonce = Annotated[Line, msgspec.Meta(min_length=1, max_length=128)]
MachineName = Annotated[Line, msgspec.Meta(min_length=1, max_length=200)]
Platform = Annotated[Line, msgspec.Meta(min_length=1, max_length=64)]
Timestamp = Annotated[str, msgspec.Meta(max_length=64)]

ValidationCode = Literal[
    "VALID",
    "NOT_FOUND",
    "EXPIRED",
    "SUSPENDED",
    "REVOKED",
    "NOT_YET_VALID",
    "PRODUCT_MISMATCH",
    "NOT_ACTIVATED",
]


class ValidateRequest(msgspec.Struct, forbid_unknown_fields=True):
    license_key: LicenseKey
    product: ProductCode
    fingerprint: Fingerprint | None = None
    """When given, the answer is ``NOT_ACTIVATED`` unless this machine holds a live seat."""
    nonce: Nonce | None = None
    """Echoed in the token's ``nonce`` claim, so a recorded answer cannot be replayed."""


class ActivateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Also accepts an offline activation request file as it is (``type`` ... ``created_at``)."""

    license_key: LicenseKey
    product: ProductCode
    fingerprint: Fingerprint
    name: MachineName | None = None
    platform: Platform | None = None
    nonce: Nonce | None = None
    type: Literal["activation_request"] | None = None
    version: Literal[1] | None = None
    created_at: Timestamp | None = None


class CheckInRequest(msgspec.Struct, forbid_unknown_fields=True):
    license_key: LicenseKey
    product: ProductCode
    fingerprint: Fingerprint


class DeactivateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Also accepts an offline deactivation request file as it is."""

    license_key: LicenseKey
    product: ProductCode
    fingerprint: Fingerprint
    nonce: Nonce | None = None
    type: Literal["deactivation_request"] | None = None
    version: Literal[1] | None = None
    created_at: Timestamp | None = None


class LicenseSummary(msgspec.Struct):
    id: uuid.UUID
    product: str
    tier: str
    status: Literal["active", "suspended", "revoked", "expired"]
    features: dict[str, Any]
    max_activations: int
    activations_count: int
    expires_at: datetime | None
    updates_until: datetime | None = None
    """Perpetual fallback: builds released up to this date are covered, also after the
    license expired (``null``: every build)."""
    is_trial: bool = False


class ValidateResponse(msgspec.Struct):
    valid: bool
    code: ValidationCode
    detail: str
    license: LicenseSummary | None
    token: str | None
    """A ``license+jwt`` when ``valid``; carries ``nonce`` when one was sent."""
    key_certificate: KeyCertificate = None
    key_revocations: KeyRevocations = None
    root_endorsements: RootEndorsements = []


class ActivationResponse(msgspec.Struct):
    """Also a valid offline activation response file (``type``, ``version``, ``nonce``)."""

    activation_id: uuid.UUID
    token: str
    """An ``activation+jwt`` whose ``exp`` is the offline lease."""
    lease_expires_at: datetime
    activations_count: int
    max_activations: int
    key_certificate: KeyCertificate
    key_revocations: KeyRevocations
    root_endorsements: RootEndorsements
    nonce: str | None = None
    type: Literal["activation_response"] = "activation_response"
    version: int = 1


class CheckInResponse(msgspec.Struct):
    token: str
    lease_expires_at: datetime
    key_certificate: KeyCertificate
    key_revocations: KeyRevocations
    root_endorsements: RootEndorsements


class FeaturesResponse(msgspec.Struct):
    product: str
    tier: str
    features: dict[str, Any]

"""Signing keys as the admin API shows them (never the private key)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from server.validation import AwareDateTime, DatedRequest


class SigningKeyRead(msgspec.Struct):
    kid: str
    state: str
    created_at: datetime
    activates_at: datetime | None
    activated_at: datetime | None
    retired_at: datetime | None
    revoked_at: datetime | None


class RotateRequest(DatedRequest, forbid_unknown_fields=True):
    activate_at: AwareDateTime | None = None
    """When the new key starts signing (default: now); it is published in the JWKS at once."""

"""License facts shared by license management and the licensing hot path."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

LICENSE_KEY_PREFIX = "LK"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_GROUPS, _GROUP_LEN = 7, 5  # 35 symbols x 5 bits = 175 random bits


def new_license_key() -> tuple[str, str, bytes]:
    """A new license key: (key shown once, display prefix, stored SHA-256 hash).

    ``LK-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX``: 175 random bits; the display prefix
    reveals the first group only (150 bits stay secret).
    """
    symbols = "".join(secrets.choice(_ALPHABET) for _ in range(_GROUPS * _GROUP_LEN))
    groups = [symbols[i : i + _GROUP_LEN] for i in range(0, len(symbols), _GROUP_LEN)]
    key = "-".join([LICENSE_KEY_PREFIX, *groups])
    return key, f"{LICENSE_KEY_PREFIX}-{groups[0]}", hash_license_key(key)


def normalize_license_key(key: str) -> str:
    return key.strip().upper()


def hash_license_key(key: str) -> bytes:
    return hashlib.sha256(normalize_license_key(key).encode()).digest()


def effective_features(tier_features: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The tier's features overlaid by the license's own."""
    return {**tier_features, **overrides}


def effective_max_activations(tier_max: int, override: int | None) -> int:
    return tier_max if override is None else override


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> str:
    """``active|suspended|revoked`` as stored, ``expired`` once an active license ran out."""
    if status == "active" and expires_at is not None and expires_at <= now:
        return "expired"
    return status

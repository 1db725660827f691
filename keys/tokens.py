"""Issuing license and activation tokens (the server side of docs/token-format.md)."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keys.crypto import SigningKey

__all__ = [
    "ACTIVATION_TYP",
    "LICENSE_TYP",
    "IssuedToken",
    "TokenSubject",
    "fingerprint_hash",
    "issue_activation_token",
    "issue_license_token",
]

LICENSE_TYP = "license+jwt"
ACTIVATION_TYP = "activation+jwt"


@dataclass(frozen=True)
class TokenSubject:
    """What a token says about a license (the claims shared by both token kinds)."""

    license_id: str
    organization_id: str
    product: str
    tier: str
    features: Mapping[str, bool | int | float | str]
    max_activations: int
    license_expires_at: datetime | None


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    jti: str


def fingerprint_hash(fingerprint: str) -> str:
    """Unpadded base64url SHA-256 of the UTF-8 fingerprint (the ``fp`` claim)."""
    digest = hashlib.sha256(fingerprint.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _epoch(value: datetime, name: str) -> int:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return math.floor(value.timestamp())


def _features(features: Mapping[str, Any]) -> dict[str, bool | int | float | str]:
    result: dict[str, bool | int | float | str] = {}
    for name, value in features.items():
        if not isinstance(name, str):
            raise ValueError("feature names must be strings")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"feature {name!r} must be finite")
        if not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"feature {name!r} must be a boolean, a number or a string")
        result[name] = value
    return result


def _claims(
    subject: TokenSubject, *, issuer: str, now: datetime, lifetime: timedelta
) -> tuple[dict[str, Any], int]:
    if lifetime <= timedelta(0):
        raise ValueError("token lifetime must be positive")
    iat = _epoch(now, "now")
    exp = _epoch(now + lifetime, "now")
    license_exp = None
    if subject.license_expires_at is not None:
        license_exp = _epoch(subject.license_expires_at, "license_expires_at")
        if license_exp <= iat:
            raise ValueError("the license has already expired; no token can be issued")
        exp = min(exp, license_exp)
    if isinstance(subject.max_activations, bool) or not isinstance(subject.max_activations, int):
        raise ValueError("max_activations must be an integer")
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": str(subject.license_id),
        "aud": subject.product,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": secrets.token_urlsafe(16),
        "org": str(subject.organization_id),
        "tier": subject.tier,
        "features": _features(subject.features),
        "max_activations": subject.max_activations,
        "license_expires_at": license_exp,
    }
    return claims, exp


def _issued(token: str, claims: dict[str, Any], exp: int) -> IssuedToken:
    return IssuedToken(token=token, expires_at=datetime.fromtimestamp(exp, UTC), jti=claims["jti"])


def issue_license_token(
    signer: SigningKey,
    subject: TokenSubject,
    *,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    nonce: str | None = None,
) -> IssuedToken:
    """A ``license+jwt`` valid until min(license expiry, now + lifetime).

    ``nonce`` (optional) is echoed as a claim so a client can bind the answer to its request.
    """
    claims, exp = _claims(subject, issuer=issuer, now=now, lifetime=lifetime)
    if nonce is not None:
        claims["nonce"] = nonce
    return _issued(signer.sign(LICENSE_TYP, claims), claims, exp)


def issue_activation_token(
    signer: SigningKey,
    subject: TokenSubject,
    *,
    issuer: str,
    activation_id: str,
    fingerprint: str,
    now: datetime,
    lease: timedelta,
) -> IssuedToken:
    """An ``activation+jwt`` for one machine whose ``exp`` is the offline lease:
    min(license expiry, now + lease). The raw fingerprint is not in the token, only its hash.
    """
    if not fingerprint:
        raise ValueError("fingerprint must be a non-empty string")
    claims, exp = _claims(subject, issuer=issuer, now=now, lifetime=lease)
    claims["act"] = str(activation_id)
    claims["fp"] = fingerprint_hash(fingerprint)
    return _issued(signer.sign(ACTIVATION_TYP, claims), claims, exp)

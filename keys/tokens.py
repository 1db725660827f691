"""Issuing license and activation tokens (the server side of docs/token-format.md)."""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from keys.crypto import SigningKey

__all__ = [
    "ACTIVATION_TYP",
    "LICENSE_TYP",
    "USAGE_TYP",
    "IssuedToken",
    "TokenSubject",
    "decode_id",
    "encode_id",
    "fingerprint_hash",
    "issue_activation_token",
    "issue_license_token",
    "issue_usage_token",
]

LICENSE_TYP = "license+jwt"
ACTIVATION_TYP = "activation+jwt"
USAGE_TYP = "usage+jwt"
JTI_BYTES = 12


def _as_uuid(value: str | uuid.UUID, name: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a UUID (a uuid.UUID or its text form)")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"{name} must be a UUID, got {value!r}") from None


def _encoded(value: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(value.bytes).rstrip(b"=").decode("ascii")


def encode_id(value: str | uuid.UUID) -> str:
    """An id claim (``sub``, ``org``, ``act``): the UUID's 16 bytes as unpadded base64url
    (22 characters). See docs/token-format.md, "Identifiers"."""
    return _encoded(_as_uuid(value, "id"))


def decode_id(claim: str) -> str:
    """Inverse of ``encode_id``: the canonical UUID text of a 22-character id claim.

    ``ValueError`` unless ``claim`` is exactly the canonical encoding of 16 bytes.
    """
    problem = ValueError(f"not a Licentia id claim: {claim!r}")
    if not isinstance(claim, str) or len(claim) != 22 or not claim.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(claim + "==")
    except ValueError:
        raise problem from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != claim:
        raise problem  # characters outside base64url, or non-zero unused bits
    return str(uuid.UUID(bytes=raw))


@dataclass(frozen=True)
class TokenSubject:
    """What a token says about a license (the claims shared by both token kinds).

    ``license_id`` and ``organization_id`` are UUIDs: pass their text form or ``uuid.UUID``;
    the fields always hold the canonical text form (lowercase, hyphenated), which is what
    the verifier's ``License`` returns. In the token they are 22-character base64url.
    """

    license_id: str
    organization_id: str
    product: str
    tier: str
    features: Mapping[str, bool | int | float | str]
    max_activations: int
    license_expires_at: datetime | None
    updates_until: datetime | None = None
    """Perpetual fallback: the last release date the license covers (``updates_until``)."""
    trial: bool = False
    """A trial (``trial: true``); both claims are written only when set."""

    encoded_ids: tuple[str, str] = field(init=False, repr=False, compare=False)
    """``sub`` and ``org`` as they go into every token of this subject, encoded once."""

    def __post_init__(self) -> None:
        license_id = _as_uuid(self.license_id, "license_id")
        organization_id = _as_uuid(self.organization_id, "organization_id")
        object.__setattr__(self, "license_id", str(license_id))
        object.__setattr__(self, "organization_id", str(organization_id))
        object.__setattr__(self, "encoded_ids", (_encoded(license_id), _encoded(organization_id)))


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
        "sub": subject.encoded_ids[0],
        "aud": subject.product,
        "iat": iat,
        "nbf": iat,
        "exp": exp,
        "jti": secrets.token_urlsafe(JTI_BYTES),
        "org": subject.encoded_ids[1],
        "tier": subject.tier,
        "features": _features(subject.features),
        "max_activations": subject.max_activations,
        "license_expires_at": license_exp,
    }
    if subject.updates_until is not None:
        claims["updates_until"] = _epoch(subject.updates_until, "updates_until")
    if subject.trial:
        claims["trial"] = True
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
    activation_id: str | uuid.UUID,
    fingerprint: str,
    now: datetime,
    lease: timedelta,
    user_id: str | uuid.UUID | None = None,
) -> IssuedToken:
    """An ``activation+jwt`` for one machine whose ``exp`` is the offline lease:
    min(license expiry, now + lease). The raw fingerprint is not in the token, only its hash.
    ``activation_id`` is a UUID (text or ``uuid.UUID``), like the subject's ids.
    ``user_id``: the named user the seat is bound to (a license of a ``user`` tier), written
    as the optional ``usr`` claim.
    """
    act = _encoded(_as_uuid(activation_id, "activation_id"))
    if not fingerprint:
        raise ValueError("fingerprint must be a non-empty string")
    claims, exp = _claims(subject, issuer=issuer, now=now, lifetime=lease)
    claims["act"] = act
    claims["fp"] = fingerprint_hash(fingerprint)
    if user_id is not None:
        claims["usr"] = _encoded(_as_uuid(user_id, "user_id"))
    return _issued(signer.sign(ACTIVATION_TYP, claims), claims, exp)


def issue_usage_token(
    signer: SigningKey,
    subject: TokenSubject,
    *,
    issuer: str,
    now: datetime,
    lifetime: timedelta,
    meter: str,
    used: int,
    limit: int,
    period_end: datetime | None,
) -> IssuedToken:
    """A ``usage+jwt``: the license's claims plus one meter's count at ``now`` (``meter``,
    ``used``, ``limit``, ``period_end``: when the count starts again from zero, null for
    never). Valid until min(license expiry, period end, now + lifetime): past the period's
    end the count it shows is no longer the current one."""
    for name, value in (("used", used), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    claims, exp = _claims(subject, issuer=issuer, now=now, lifetime=lifetime)
    end = None
    if period_end is not None:
        end = _epoch(period_end, "period_end")
        if end <= claims["iat"]:
            raise ValueError("the period has already ended")
        exp = min(exp, end)
        claims["exp"] = exp
    claims["meter"] = meter
    claims["used"] = used
    claims["limit"] = limit
    claims["period_end"] = end
    return _issued(signer.sign(USAGE_TYP, claims), claims, exp)

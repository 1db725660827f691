"""SQLAlchemy 2 typed models. The schema itself is built by Alembic (migrations/)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    FetchedValue,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        uuid.UUID: UUID(as_uuid=True),
    }


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    email: Mapped[str] = mapped_column(String(320))
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    token_generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Access tokens carry it; bumping it (password change, logout everywhere) ends them."""
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    last_login_at: Mapped[datetime | None]


class Product(Base):
    __tablename__ = "products"

    id: Mapped[uuid.UUID] = _uuid_pk()
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Tier(Base):
    __tablename__ = "tiers"

    id: Mapped[uuid.UUID] = _uuid_pk()
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    features: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    max_activations: Mapped[int] = mapped_column(Integer)
    duration_days: Mapped[int | None] = mapped_column(Integer)
    offline_lease_days: Mapped[int] = mapped_column(Integer)
    lease_grace_days: Mapped[int] = mapped_column(Integer)
    max_deactivations_per_day: Mapped[int] = mapped_column(Integer)
    expiry_notice_days: Mapped[int] = mapped_column(Integer, server_default=text("14"))
    is_trial: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    self_serve_trials: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    """Keyless machine trials of the product (at most one such tier per product)."""
    expiry_behavior: Mapped[str] = mapped_column(String(16), server_default="restrict")
    """``restrict`` or ``fallback`` (perpetual fallback; ``server.license_rules``)."""
    # named-user seats (migration 0009)
    seat_kind: Mapped[str] = mapped_column(String(16), server_default="machine")
    """``machine`` (seats are machines) or ``user`` (named users, each with machines)."""
    max_users: Mapped[int | None] = mapped_column(Integer)
    machines_per_user: Mapped[int] = mapped_column(Integer, server_default=text("3"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    # usage meters (migration 0008): ``{name: {"period": "day" | "month" | null}}``; each
    # meter's limit is the tier's feature of the same name (``server.metering``)
    meters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class License(Base):
    __tablename__ = "licenses"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tiers.id"))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    key_prefix: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), server_default="active")
    starts_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime | None]
    max_activations: Mapped[int | None] = mapped_column(Integer)
    max_users: Mapped[int | None] = mapped_column(Integer)
    """Overrides the tier's ``max_users`` (migration 0010); ``None``: the tier's."""
    features: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Activation(Base):
    __tablename__ = "activations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"))
    fingerprint_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    platform: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime] = _now()
    last_check_in_at: Mapped[datetime] = _now()
    lease_expires_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]
    deactivation_reason: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    """The user a seat of a ``user`` license is bound to (migration 0009)."""


class LicenseUser(Base):
    """A member of the license's organization assigned to a ``user`` license (a named seat)."""

    __tablename__ = "license_users"

    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    assigned_at: Mapped[datetime] = _now()


class Trial(Base):
    """A keyless machine trial: one per product and machine, ever (only the fingerprint's
    hash is stored). No organization until it converts."""

    __tablename__ = "trials"

    id: Mapped[uuid.UUID] = _uuid_pk()
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id"))
    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tiers.id"))
    fingerprint_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    platform: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    converted_at: Mapped[datetime | None]
    converted_license_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("licenses.id"))
    converted_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id")
    )


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class SigningKeyRow(Base):
    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    encrypted_private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _now()
    activates_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RootKeyRow(Base):
    """A deployment's root of trust: it signs key certificates, root endorsements and
    revocation lists, nothing else. ``encrypted_private_key`` is ``None`` once the root was
    moved offline (``licentia keys root export-private``)."""

    __tablename__ = "root_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    encrypted_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    endorsement: Mapped[str | None] = mapped_column(Text)
    """The ``root+jwt`` signed by the root this one replaced (``None`` for the first root)."""
    endorsed_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _now()
    exported_at: Mapped[datetime | None]
    superseded_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


class KeyCertificateRow(Base):
    """A ``key+jwt``: the root ``root_kid`` certifies the signing key ``kid``."""

    __tablename__ = "key_certificates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kid: Mapped[str] = mapped_column(String(64), ForeignKey("signing_keys.kid"))
    root_kid: Mapped[str] = mapped_column(String(64), ForeignKey("root_keys.kid"))
    token: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime]
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = _now()


class KeyRevocationListRow(Base):
    """A ``key-revocations+jwt``; the one with the highest ``seq`` is current."""

    __tablename__ = "key_revocation_lists"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    root_kid: Mapped[str] = mapped_column(String(64), ForeignKey("root_keys.kid"))
    revoked: Mapped[list[str]] = mapped_column(ARRAY(Text))
    token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = _now()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    family_id: Mapped[uuid.UUID]
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    request_id: Mapped[str | None] = mapped_column(String(128))
    ip: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = _now()


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    scope: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[bytes] = mapped_column(LargeBinary)
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]


class RateLimitHit(Base):
    """Fixed-window counters shared by every worker and replica."""

    __tablename__ = "rate_limits"

    bucket: Mapped[str] = mapped_column(String(255), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)


class WebhookEndpoint(Base):
    """Where events are POSTed. ``secret`` (and, for 24 hours after a rotation,
    ``previous_secret``) are encrypted under the key-encryption key."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(500), server_default="")
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(String(32))
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_until: Mapped[datetime | None]
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class WebhookEvent(Base):
    """The outbox: written by the ``audit_events`` trigger (migration 0006) in the same
    transaction as the change; ``subject`` is the object as it was then. The dispatcher's
    fan-out sets ``sequence`` (license events) and ``fanned_out_at`` when it writes the
    event's deliveries."""

    __tablename__ = "webhook_events"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())
    type: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    license_id: Mapped[uuid.UUID | None]
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime]
    subject: Mapped[dict[str, Any]] = mapped_column(JSONB)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    fanned_out_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event for one endpoint, until a 2xx answer (or until retries run out)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    created_at: Mapped[datetime] = _now()
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _now()
    locked_until: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]


class StaffAccount(Base):
    """A member of the vendor's staff: signs in to the console, belongs to no organization."""

    __tablename__ = "staff_accounts"

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    token_generation: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """Sessions carry it; bumping it (password change) ends them."""
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    last_login_at: Mapped[datetime | None]


class WebSession(Base):
    """A console or portal sign-in, found by the SHA-256 of its cookie."""

    __tablename__ = "web_sessions"

    id: Mapped[uuid.UUID] = _uuid_pk()
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    area: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[uuid.UUID]
    organization_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organizations.id"))
    role: Mapped[str] = mapped_column(String(16))
    token_generation: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime]


class LicenseUsage(Base):
    """Units of a meter used by a license in one period (migration 0008; ``period`` and
    ``period_start`` are null for a meter that never resets). A tenant table."""

    __tablename__ = "license_usage"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organization_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id"))
    license_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("licenses.id"))
    meter: Mapped[str] = mapped_column(String(64))
    period: Mapped[str | None] = mapped_column(String(8))
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    used: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = _now()

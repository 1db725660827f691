"""What products call: validate, activate, check in, deactivate, features.

The hot path (idiom 8): a handful of indexed statements per call, no ORM objects.

1. ``set_config('app.organization_id', licentia_license_org(hash), true)`` sets the tenant
   from the key hash (the SECURITY DEFINER look-up returns only the organization id); an
   empty result means an unknown key, which counts against the caller's address.
2. One joined SELECT of license + product + tier, filtered by the organization as well as by
   row-level security; activation and deactivation take ``FOR UPDATE`` on the license row so
   every seat decision for one license is serialised by PostgreSQL, across workers and
   replicas alike.
3. After the lock, one statement releases seats whose lease ran out longer ago than the
   tier's grace period and counts the live ones (a new statement, hence a fresh snapshot in
   READ COMMITTED: it sees every activation committed before the lock was granted).
4. Insert (``ON CONFLICT DO NOTHING`` on the partial unique index of live fingerprints) or
   renew; sign the token.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from keys.crypto import SigningKey
from keys.tokens import fingerprint_hash, issue_activation_token, issue_license_token
from server import license_rules as rules
from server import ratelimit
from server.audit import service as audit
from server.errors import (
    ActivationLimitReached,
    InvalidInput,
    NotFound,
    ProductMismatch,
    RateLimited,
)
from server.license_rules import LicenseTerms, hash_license_key
from server.license_rules import as_uuid as _uuid
from server.product_licensing.schemas import (
    ActivateRequest,
    ActivationResponse,
    CheckInRequest,
    CheckInResponse,
    DeactivateRequest,
    FeaturesResponse,
    LicenseSummary,
    ValidateRequest,
    ValidateResponse,
)
from server.settings import Settings


class SignerSource(Protocol):
    async def signer(self) -> SigningKey: ...


@dataclass(frozen=True)
class Caller:
    """What the service needs besides its connection: settings, the signer, the abuse limiter."""

    settings: Settings
    keyring: SignerSource
    engine: AsyncEngine | None = None
    """For the unknown-key counter, written in its own transaction; ``None`` disables it."""
    client_ip: str | None = None


# --- SQL --------------------------------------------------------------------------------


class _Sql:
    """A statement written with ``:named`` parameters, sent positionally through asyncpg.

    The hot path runs on a plain asyncpg connection inside the request's one transaction
    (``server.db.hot_pool.provide_connection``; the CLI uses the same ``pooled_transaction``): no
    SQLAlchemy work per request, and asyncpg prepares each statement once per connection.
    """

    __slots__ = ("names", "sql")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.sql = re.sub(r"(?<!:):(\w+)", number, sql)
        self.names = tuple(names)

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]

    async def row(self, conn: asyncpg.Connection, **params: Any) -> asyncpg.Record | None:
        return await conn.fetchrow(self.sql, *self._args(params))

    async def value(self, conn: asyncpg.Connection, **params: Any) -> Any:
        return await conn.fetchval(self.sql, *self._args(params))


_RESOLVE_TENANT = _Sql(
    "SELECT set_config('app.organization_id', "
    "coalesce(licentia_license_org(:hash)::text, ''), true) AS org"
)

_LICENSE_COLUMNS = """
    l.id, l.organization_id, l.status, l.starts_at, l.expires_at,
    l.max_activations, l.features, p.code AS product, t.code AS tier,
    t.features AS tier_features, t.max_activations AS tier_max_activations,
    t.offline_lease_days, t.lease_grace_days, t.max_deactivations_per_day
"""
_LICENSE_FROM = """
    FROM licenses l
    JOIN products p ON p.id = l.product_id
    JOIN tiers t ON t.id = l.tier_id
    WHERE l.key_hash = :hash AND l.organization_id = :org
"""
_LIVE = "a.license_id = l.id AND a.organization_id = l.organization_id AND " + rules.live_seat_sql(
    "a", "t.lease_grace_days", ":now"
)

# Validation reads only: the seat count and this machine's seat come along as subqueries.
_VALIDATE = _Sql(
    f"""
    SELECT {_LICENSE_COLUMNS},
        (SELECT count(*) FROM activations a WHERE {_LIVE}) AS seats,
        (SELECT a.id FROM activations a WHERE {_LIVE} AND a.fingerprint_hash = :fp) AS seat
    {_LICENSE_FROM}
    """
)

_LICENSE = _Sql(f"SELECT {_LICENSE_COLUMNS} {_LICENSE_FROM}")
_LICENSE_FOR_UPDATE = _Sql(f"SELECT {_LICENSE_COLUMNS} {_LICENSE_FROM} FOR UPDATE OF l")
# Check-ins of one license run side by side, but never interleave with a seat decision: a
# check-in renewing a seat on the edge of its grace period must not let an activation
# running at the same moment see that seat as neither stale nor live.
_LICENSE_FOR_KEY_SHARE = _Sql(f"SELECT {_LICENSE_COLUMNS} {_LICENSE_FROM} FOR KEY SHARE OF l")
_LOCKS = {"none": _LICENSE, "seats": _LICENSE_FOR_UPDATE, "check_in": _LICENSE_FOR_KEY_SHARE}

# Runs after the license row is locked: release stale seats, count the live ones.
_SEATS = _Sql(
    f"""
    WITH stale AS (
        UPDATE activations a
        SET deactivated_at = :now, deactivation_reason = '{rules.LEASE_EXPIRED}'
        WHERE a.license_id = :license_id AND a.organization_id = :org
          AND {rules.stale_seat_sql("a", ":grace", ":now")}
        RETURNING a.id, a.license_id, a.organization_id
    ), audited AS (
        {
        audit.insert_select_sql(
            "stale",
            organization_id="organization_id",
            target_id="id::text",
            data="jsonb_build_object('license_id', license_id)",
        )
    }
    ), live AS (
        SELECT a.id, a.fingerprint_hash FROM activations a
        WHERE a.license_id = :license_id AND a.organization_id = :org
          AND {rules.live_seat_sql("a", ":grace", ":now")}
    )
    SELECT (SELECT count(*) FROM live) AS seats,
           (SELECT id FROM live WHERE fingerprint_hash = :fp) AS seat,
           (SELECT count(*) FROM stale) AS released
    """
)

_INSERT_ACTIVATION = _Sql(
    """
    INSERT INTO activations (id, organization_id, license_id, fingerprint_hash, name, platform,
                             activated_at, last_check_in_at, lease_expires_at)
    VALUES (:id, :org, :license_id, :fp, :name, :platform, :now, :now, :lease)
    ON CONFLICT (license_id, fingerprint_hash) WHERE deactivated_at IS NULL DO NOTHING
    RETURNING id
    """
)

_RENEW_BY_ID = _Sql(
    """
    UPDATE activations
    SET lease_expires_at = :lease, last_check_in_at = :now,
        name = coalesce(:name, name), platform = coalesce(:platform, platform)
    WHERE id = :id AND organization_id = :org AND deactivated_at IS NULL
    RETURNING id
    """
)

# Check-in: one conditional update; a seat already past its grace period is not revived.
_CHECK_IN = _Sql(
    f"""
    UPDATE activations a
    SET lease_expires_at = :lease, last_check_in_at = :now
    WHERE a.license_id = :license_id AND a.organization_id = :org AND a.fingerprint_hash = :fp
      AND {rules.live_seat_sql("a", ":grace", ":now")}
    RETURNING a.id
    """
)

# The machine's seat and whether the daily limit allows freeing it, read under the lock.
_DEACTIVATION = _Sql(
    f"""
    SELECT (SELECT a.id FROM activations a
            WHERE a.license_id = :license_id AND a.organization_id = :org
              AND a.fingerprint_hash = :fp AND a.deactivated_at IS NULL) AS seat,
           {rules.deactivation_allowed_sql(":limit", ":license_id", ":org", ":now")} AS allowed
    """
)

_DEACTIVATE = _Sql(
    f"""
    UPDATE activations SET deactivated_at = :now, deactivation_reason = '{rules.USER_DEACTIVATION}'
    WHERE id = :id AND organization_id = :org
    """
)

_TIER_FEATURES = _Sql(
    """
    SELECT t.features FROM tiers t JOIN products p ON p.id = t.product_id
    WHERE p.code = :product AND t.code = :tier
    """
)

# --- small facts ----------------------------------------------------------------------------


def _now() -> datetime:
    """Whole seconds, like the tokens' ``iat``/``exp``, so a lease stored equals a token's."""
    return datetime.now(UTC).replace(microsecond=0)


def _json(value: Any) -> dict[str, Any]:
    """A jsonb value: decoded already by the codec SQLAlchemy installs, else text."""
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else value


def _refuse_other_product(lic: LicenseTerms, product: str) -> None:
    if lic.product != product:
        raise ProductMismatch(
            f"This license is for another product, not {product!r}", code="PRODUCT_MISMATCH"
        )


@dataclass(frozen=True, slots=True)
class _License:
    """The license row read by the hot path: its terms and its tier's seat settings."""

    terms: LicenseTerms
    status: rules.Status
    offline_lease_days: int
    lease_grace_days: int
    max_deactivations_per_day: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any], now: datetime) -> _License:
        terms = LicenseTerms.from_row(row)
        return cls(
            terms=terms,
            status=terms.status(now),
            offline_lease_days=row["offline_lease_days"],
            lease_grace_days=row["lease_grace_days"],
            max_deactivations_per_day=row["max_deactivations_per_day"],
        )

    def summary(self, activations_count: int) -> LicenseSummary:
        terms = self.terms
        return LicenseSummary(
            id=terms.id,
            product=terms.product,
            tier=terms.tier,
            status=rules.shown_status(self.status),
            features=terms.features,
            max_activations=terms.max_activations,
            activations_count=activations_count,
            expires_at=rules.whole_second(terms.expires_at) if terms.expires_at else None,
        )

    def lease_end(self, now: datetime) -> datetime:
        return self.terms.lease_end(now, self.offline_lease_days)

    def refuse_unless_usable(self, product: str) -> None:
        """Raise the refusal shared by activate, check-in and features."""
        _refuse_other_product(self.terms, product)
        rules.refuse_unless_usable(self.status)


async def _resolve_tenant(
    conn: asyncpg.Connection, caller: Caller, key: str
) -> tuple[bytes, uuid.UUID]:
    """Set the transaction's tenant from the key; count and refuse an unknown key."""
    key_hash = hash_license_key(key)
    org = await _RESOLVE_TENANT.value(conn, hash=key_hash)
    if not org:
        await count_unknown_key(caller)
        raise NotFound("No license has this key", code="LICENSE_NOT_FOUND")
    return key_hash, uuid.UUID(org)


async def _license(
    conn: asyncpg.Connection,
    caller: Caller,
    key: str,
    now: datetime,
    *,
    lock: Literal["none", "seats", "check_in"],
) -> _License:
    key_hash, org = await _resolve_tenant(conn, caller, key)
    row = await _LOCKS[lock].row(conn, hash=key_hash, org=org)
    if row is None:  # deleted between the two statements
        raise NotFound("No license has this key", code="LICENSE_NOT_FOUND")
    return _License.from_row(row, now)


async def count_unknown_key(caller: Caller) -> None:
    """Count a call with an unknown key against the caller's address; 429 over the limit.

    The counter lives in PostgreSQL (shared by every worker and replica) and is written in its
    own transaction, so the refused request's rollback does not erase it.
    """
    limit = caller.settings.unknown_key_attempts_per_minute
    if caller.engine is None or not caller.client_ip or limit <= 0:
        return
    retry_after = await ratelimit.hit(
        caller.engine, ratelimit.bucket("license-key", caller.client_ip), limit, 60
    )
    if retry_after is not None:
        raise RateLimited(
            "Too many calls with unknown license keys from this address; slow down",
            retry_after=retry_after,
        )


async def _activation_token(
    caller: Caller,
    lic: _License,
    activation_id: uuid.UUID,
    fingerprint: str,
    now: datetime,
    lease_end: datetime,
) -> str:
    return issue_activation_token(
        await caller.keyring.signer(),
        lic.terms.subject(),
        issuer=caller.settings.issuer,
        activation_id=str(activation_id),
        fingerprint=fingerprint,
        now=now,
        lease=lease_end - now,
    ).token


# --- the five operations ------------------------------------------------------------------


async def validate(
    conn: asyncpg.Connection, caller: Caller, data: ValidateRequest
) -> ValidateResponse:
    """Every license outcome is an answer (``valid`` + ``code``); validation changes nothing."""
    now = _now()
    key_hash = hash_license_key(data.license_key)
    org = await _RESOLVE_TENANT.value(conn, hash=key_hash)
    if not org:
        await count_unknown_key(caller)
        return ValidateResponse(False, "NOT_FOUND", "No license has this key", None, None)
    fp = fingerprint_hash(data.fingerprint) if data.fingerprint is not None else None
    row = await _VALIDATE.row(conn, hash=key_hash, org=uuid.UUID(org), now=now, fp=fp)
    if row is None:
        return ValidateResponse(False, "NOT_FOUND", "No license has this key", None, None)
    lic = _License.from_row(row, now)
    summary = lic.summary(row["seats"])
    if lic.terms.product != data.product:
        detail = f"This license is for another product, not {data.product!r}"
        return ValidateResponse(False, "PRODUCT_MISMATCH", detail, summary, None)
    refused = rules.refusal(lic.status)
    if refused is not None:
        return ValidateResponse(False, refused.code, refused.detail, summary, None)  # type: ignore[arg-type]
    if fp is not None and row["seat"] is None:
        detail = "This machine holds no seat of this license; activate it first"
        return ValidateResponse(False, "NOT_ACTIVATED", detail, summary, None)
    issued = issue_license_token(
        await caller.keyring.signer(),
        lic.terms.subject(),
        issuer=caller.settings.issuer,
        now=now,
        lifetime=timedelta(seconds=caller.settings.license_token_ttl_seconds),
        nonce=data.nonce,
    )
    return ValidateResponse(True, "VALID", "The license is valid", summary, issued.token)


@dataclass(frozen=True)
class Activated:
    response: ActivationResponse
    created: bool
    """``False`` when this machine already held a seat (idempotent repeat)."""


async def activate(conn: asyncpg.Connection, caller: Caller, data: ActivateRequest) -> Activated:
    """Take a seat for this machine, or renew the one it holds; never oversell."""
    now = _now()
    lic = await _license(conn, caller, data.license_key, now, lock="seats")
    lic.refuse_unless_usable(data.product)
    terms = lic.terms
    fp = fingerprint_hash(data.fingerprint)
    released = audit.event(
        None,
        "activation.expire",
        "activation",
        organization_id=terms.organization_id,
        data={"reason": rules.LEASE_EXPIRED},
    )
    seats = await _SEATS.row(
        conn,
        license_id=terms.id,
        org=terms.organization_id,
        grace=lic.lease_grace_days,
        now=now,
        fp=fp,
        **audit.insert_select_params(released),
    )
    assert seats is not None
    seat, live = seats["seat"], seats["seats"]
    lease_end = lic.lease_end(now)
    params = {"org": terms.organization_id, "now": now, "lease": lease_end}
    if seat is not None:
        activation_id = _uuid(seat)
        await _RENEW_BY_ID.value(
            conn, **params, id=activation_id, name=data.name, platform=data.platform
        )
        created, count = False, live
    else:
        if live >= terms.max_activations:
            raise ActivationLimitReached(
                f"All {terms.max_activations} seat(s) of this license are taken; deactivate a "
                "machine first",
                code="ACTIVATION_LIMIT",
            )
        activation_id = uuid.uuid4()
        inserted = await _INSERT_ACTIVATION.value(
            conn,
            **params,
            id=activation_id,
            license_id=terms.id,
            fp=fp,
            name=data.name,
            platform=data.platform,
        )
        if inserted is None:  # cannot happen under the row lock; kept as a backstop
            raise ActivationLimitReached("Try again", code="ACTIVATION_CONFLICT")
        created, count = True, live + 1
        await audit.record_on_connection(
            conn,
            ("license", str(terms.id)),
            "activation.create",
            "activation",
            activation_id,
            organization_id=terms.organization_id,
            data={"license_id": str(terms.id), "name": data.name, "platform": data.platform},
        )
    token = await _activation_token(caller, lic, activation_id, data.fingerprint, now, lease_end)
    response = ActivationResponse(
        activation_id=activation_id,
        token=token,
        lease_expires_at=lease_end,
        activations_count=count,
        max_activations=terms.max_activations,
        nonce=data.nonce,
    )
    return Activated(response, created)


async def check_in(
    conn: asyncpg.Connection, caller: Caller, data: CheckInRequest
) -> CheckInResponse:
    """Renew the lease of a live seat with a fresh activation token."""
    now = _now()
    lic = await _license(conn, caller, data.license_key, now, lock="check_in")
    lic.refuse_unless_usable(data.product)
    lease_end = lic.lease_end(now)
    activation_id = await _CHECK_IN.value(
        conn,
        license_id=lic.terms.id,
        org=lic.terms.organization_id,
        fp=fingerprint_hash(data.fingerprint),
        grace=lic.lease_grace_days,
        now=now,
        lease=lease_end,
    )
    if activation_id is None:
        raise NotFound(
            "This machine holds no seat of this license; activate it again",
            code="NOT_ACTIVATED",
        )
    token = await _activation_token(
        caller, lic, _uuid(activation_id), data.fingerprint, now, lease_end
    )
    return CheckInResponse(token=token, lease_expires_at=lease_end)


async def deactivate(
    conn: asyncpg.Connection, caller: Caller, data: DeactivateRequest
) -> uuid.UUID:
    """Free this machine's seat at once; at most N per license in 24 hours (tier setting)."""
    now = _now()
    lic = await _license(conn, caller, data.license_key, now, lock="seats")
    terms = lic.terms
    _refuse_other_product(terms, data.product)
    params = {"license_id": terms.id, "org": terms.organization_id}
    found = await _DEACTIVATION.row(
        conn,
        **params,
        fp=fingerprint_hash(data.fingerprint),
        now=now,
        limit=lic.max_deactivations_per_day,
    )
    assert found is not None
    if found["seat"] is None:
        raise NotFound("This machine holds no seat of this license", code="NOT_ACTIVATED")
    if not found["allowed"]:
        raise rules.deactivation_limit_reached(lic.max_deactivations_per_day)
    activation_id = _uuid(found["seat"])
    await _DEACTIVATE.value(conn, id=activation_id, org=terms.organization_id, now=now)
    await audit.record_on_connection(
        conn,
        ("license", str(terms.id)),
        "activation.deactivate",
        "activation",
        activation_id,
        organization_id=terms.organization_id,
        data={"license_id": str(terms.id), "reason": rules.USER_DEACTIVATION},
    )
    return activation_id


async def features(
    conn: asyncpg.Connection,
    caller: Caller,
    *,
    product: str,
    tier: str | None = None,
    license_key: str | None = None,
) -> FeaturesResponse:
    """The features of a tier (the public catalogue), or those of one license."""
    if (tier is None) == (license_key is None):
        raise InvalidInput("Give either tier or license_key", code="VALIDATION_ERROR")
    if license_key is not None:
        lic = await _license(conn, caller, license_key, _now(), lock="none")
        lic.refuse_unless_usable(product)
        terms = lic.terms
        return FeaturesResponse(product=terms.product, tier=terms.tier, features=terms.features)
    found = await _TIER_FEATURES.row(conn, product=product, tier=tier)
    if found is None:
        raise NotFound(f"No tier {tier!r} of product {product!r}", code="TIER_NOT_FOUND")
    return FeaturesResponse(product=product, tier=tier or "", features=_json(found["features"]))

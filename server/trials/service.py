"""Keyless machine trials: one per product and machine, ever; and the vendor's view of them.

Starting a trial is public (no key, no login), so every call counts against the caller's
address (``trial_requests_per_minute``, counted in PostgreSQL in its own transaction like
the unknown-key counter). The trial row is taken with one autocommit statement
(``INSERT ... ON CONFLICT DO NOTHING`` on the unique product + fingerprint hash): any number
of simultaneous requests for one machine make one row, and all get that trial back. Only the
fingerprint's hash is stored. A trial is marked converted by ``licentia_activate``
(migrations/versions/0006) when its machine takes a seat of a real license of the product.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from keys.crypto import SigningKey
from keys.tokens import TokenSubject, fingerprint_hash, issue_activation_token
from server import license_rules as rules
from server import ratelimit
from server.errors import Conflict, NotFound, RateLimited
from server.models import Product, Tier, Trial
from server.pagination import after_cursor, encode_cursor
from server.settings import Settings
from server.signing_keys.keyring import Trust
from server.trials.schemas import (
    TrialCounts,
    TrialPage,
    TrialRead,
    TrialRequest,
    TrialStarted,
    TrialStatus,
)

NO_ORGANIZATION = "00000000-0000-0000-0000-000000000000"
"""The ``org`` claim of a keyless trial's token: a trial belongs to no organization."""


class SignerSource(Protocol):
    async def signer_and_trust(self) -> tuple[SigningKey, Trust]: ...


@dataclass(frozen=True)
class Caller:
    settings: Settings
    keyring: SignerSource
    engine: AsyncEngine | None = None
    """For the per-address counter, written in its own transaction; ``None`` disables it."""
    client_ip: str | None = None


# Take the trial (or nothing when this machine has one): the inserted row, or one row with
# ``created`` false when the product offers trials but this machine already has one, or no
# row when the product offers none.
_START = """
    WITH tier AS (
        SELECT t.id, t.product_id, t.duration_days FROM tiers t
        JOIN products p ON p.id = t.product_id
        WHERE p.code = $1 AND t.self_serve_trials AND t.is_trial
    ), started AS (
        INSERT INTO trials (product_id, tier_id, fingerprint_hash, name, platform, started_at,
                            ends_at)
        SELECT product_id, id, $2, $3, $4, CAST($5 AS timestamptz),
               CAST($5 AS timestamptz) + make_interval(days => duration_days)
        FROM tier
        ON CONFLICT (product_id, fingerprint_hash) DO NOTHING
        RETURNING id, tier_id, ends_at, converted_at
    )
    SELECT s.id, s.ends_at, s.converted_at, t.code AS tier, t.features, true AS created
    FROM started s JOIN tiers t ON t.id = s.tier_id
    UNION ALL
    SELECT NULL, NULL, NULL, NULL, NULL, false FROM tier
    WHERE NOT EXISTS (SELECT 1 FROM started)
"""

# This machine's trial of the product (a new statement: it sees a row another request
# committed while ours waited on the unique index).
_EXISTING = """
    SELECT tr.id, tr.ends_at, tr.converted_at, t.code AS tier, t.features, false AS created
    FROM trials tr
    JOIN tiers t ON t.id = tr.tier_id
    JOIN products p ON p.id = tr.product_id
    WHERE p.code = $1 AND tr.fingerprint_hash = $2
"""

_ATTEMPTS = 3


@dataclass(frozen=True)
class Started:
    response: TrialStarted
    created: bool


async def _count_call(caller: Caller) -> None:
    limit = caller.settings.trial_requests_per_minute
    if caller.engine is None or not caller.client_ip or limit <= 0:
        return
    retry_after = await ratelimit.hit(
        caller.engine, ratelimit.bucket("trial", caller.client_ip), limit, 60
    )
    if retry_after is not None:
        raise RateLimited(
            "Too many trial requests from this address; slow down", retry_after=retry_after
        )


async def _take(pool: asyncpg.Pool, data: TrialRequest, fp: str, now: datetime) -> Any:
    for _ in range(_ATTEMPTS):
        row = await pool.fetchrow(_START, data.product, fp, data.name, data.platform, now)
        if row is None:
            raise NotFound(
                f"Product {data.product!r} offers no self-serve trial", code="TRIAL_NOT_OFFERED"
            )
        if row["created"]:
            return row
        existing = await pool.fetchrow(_EXISTING, data.product, fp)
        if existing is not None:
            return existing
    raise Conflict("The trial changed during the call; try again", code="TRIAL_CHANGED")


async def start_trial(pool: asyncpg.Pool, caller: Caller, data: TrialRequest) -> Started:
    """Start this machine's trial of the product, or give its running trial back (with a
    fresh token); ``TRIAL_ALREADY_USED`` once it ended or converted."""
    await _count_call(caller)
    now = rules.current_second()
    fp = fingerprint_hash(data.fingerprint)
    row = await _take(pool, data, fp, now)
    ends_at: datetime = row["ends_at"]
    status = rules.trial_status(ends_at, row["converted_at"], now)
    if status != "running":
        raise Conflict(
            f"This machine's trial of {data.product!r} is over ({status})",
            code="TRIAL_ALREADY_USED",
            trial_ends_at=ends_at.isoformat(),
        )
    trial_id = rules.as_uuid(row["id"])
    features = rules.json_object(row["features"])
    subject = TokenSubject(
        license_id=str(trial_id),
        organization_id=NO_ORGANIZATION,
        product=data.product,
        tier=row["tier"],
        features=features,
        max_activations=1,
        license_expires_at=rules.whole_second(ends_at),
        trial=True,
    )
    # The key and its trust material from one snapshot: a product that embeds only the
    # root learns the key from this answer's certificate (docs/token-format.md).
    signer, trust = await caller.keyring.signer_and_trust()
    token = issue_activation_token(
        signer,
        subject,
        issuer=caller.settings.issuer,
        activation_id=trial_id,
        fingerprint=data.fingerprint,
        now=now,
        lease=ends_at - now,
    ).token
    response = TrialStarted(
        trial_id=trial_id,
        product=data.product,
        tier=row["tier"],
        features=features,
        token=token,
        trial_ends_at=rules.whole_second(ends_at),
        key_certificate=trust.key_certificate,
        key_revocations=trust.key_revocations,
        root_endorsements=list(trust.root_endorsements),
    )
    return Started(response, bool(row["created"]))


# --- the vendor's view -----------------------------------------------------------------------


def _select() -> Any:
    return (
        select(Trial, Product.code.label("product"), Tier.code.label("tier"))
        .join(Product, Product.id == Trial.product_id)
        .join(Tier, Tier.id == Trial.tier_id)
    )


def _status_is(status: TrialStatus, now: datetime) -> Any:
    return text(f"{rules.trial_status_sql('trials', ':now')} = :status").bindparams(
        now=now, status=status
    )


def _read(trial: Trial, product: str, tier: str, now: datetime) -> TrialRead:
    return TrialRead(
        id=trial.id,
        product=product,
        tier=tier,
        fingerprint_hash=trial.fingerprint_hash,
        name=trial.name,
        platform=trial.platform,
        started_at=trial.started_at,
        ends_at=trial.ends_at,
        status=rules.trial_status(trial.ends_at, trial.converted_at, now),
        converted_at=trial.converted_at,
        converted_license_id=trial.converted_license_id,
        converted_organization_id=trial.converted_organization_id,
    )


async def list_trials(
    session: AsyncSession,
    *,
    product: str | None = None,
    status: TrialStatus | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> TrialPage:
    """Oldest first (keyset on started_at, id), with the counts per status of every trial
    of ``product`` (of all products when none is given)."""
    now = now or datetime.now(UTC)
    query = _select()
    shown = rules.trial_status_sql("trials", ":now")
    counted = (
        select(text(f"{shown} AS status"), func.count())
        .select_from(Trial)
        .join(Product, Product.id == Trial.product_id)
        .group_by(text("1"))
    )
    if product is not None:
        query = query.where(Product.code == product)
        counted = counted.where(Product.code == product)
    by_status = {row[0]: row[1] for row in (await session.execute(counted, {"now": now})).all()}
    if status is not None:
        query = query.where(_status_is(status, now))
    if cursor:
        query = after_cursor(query, Trial.started_at, Trial.id, cursor)
    query = query.order_by(Trial.started_at, Trial.id).limit(limit + 1)
    rows = list((await session.execute(query)).all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].Trial.started_at, rows[-1].Trial.id)
    total = sum(by_status.values())
    converted = by_status.get("converted", 0)
    counts = TrialCounts(
        running=by_status.get("running", 0),
        ended=by_status.get("ended", 0),
        converted=converted,
        total=total,
        conversion_rate=round(converted / total, 4) if total else None,
    )
    return TrialPage(
        items=[_read(row.Trial, row.product, row.tier, now) for row in rows],
        next_cursor=next_cursor,
        counts=counts,
    )


async def get_trial(session: AsyncSession, trial_id: uuid.UUID) -> TrialRead:
    row = (await session.execute(_select().where(Trial.id == trial_id))).one_or_none()
    if row is None:
        raise NotFound("No such trial", code="TRIAL_NOT_FOUND")
    return _read(row.Trial, row.product, row.tier, datetime.now(UTC))

"""Usage metering: products consume a meter's units; admins read and reset the counts.

A tier declares meters (``server.products``: each meter's limit is the tier's feature of its
name, its period in ``tiers.meters``); a license overrides a limit like any feature. Counts
live in ``license_usage``, one row per license, meter and period (migration 0008), so a new
period starts from zero by itself and past periods stay as history.

- ``consume`` (the product's call, on the licensing pool, in one transaction): read the license
  and judge it (``licentia_validate``, the rules of ``server.license_rules``: refused like
  activate), claim the ``Idempotency-Key`` (``server.idempotency``: a repeat replays the first
  answer and consumes nothing), then ``licentia_consume``, one statement that locks the license
  row only if it is still the version judged and adds the units under the counter's row lock
  if the limit allows (all or nothing). The ``usage+jwt`` is signed before the commit (the
  stored answer must hold it) and sent only after it.
- ``license_usage`` and ``reset_usage`` (admin API, console, portal, ``licentia licenses
  usage`` / ``usage-reset``; ORM): the current period and the past ones per meter; a reset
  sets the current period's count to zero, audited (``license.usage_reset``, with the counts
  cleared), which is also the ``license.usage_reset`` webhook event (migration 0010).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keys.tokens import fingerprint_hash, issue_usage_token
from server import idempotency
from server import license_rules as rules
from server.audit.service import Actor, principal_of, record
from server.db.hot_pool import pooled_transaction
from server.errors import Conflict, InvalidInput, NotFound
from server.license_admin import service as license_admin
from server.license_rules import hash_license_key, json_object
from server.metering.schemas import (
    LicenseUsage,
    MeterUsage,
    PeriodUsage,
    UsageRequest,
    UsageResponse,
)
from server.models import LicenseUsage as UsageRow
from server.models import Product, Tier
from server.product_licensing import service as licensing

HISTORY_PERIODS = 24
"""Past periods shown per meter."""

# The license as validation reads it (tenant set from the key hash, this machine's seat), with
# its tier's meters: tiers are no tenant table, and LATERAL runs after the function set the
# tenant.
_READ = licensing.Statement(
    """
    SELECT v.*, m.meters FROM licentia_validate(:hash, :fp, :now) v,
    LATERAL (SELECT t.meters FROM tiers t JOIN products p ON p.id = t.product_id
             WHERE p.code = v.product AND t.code = v.tier) m
    """
)
_CONSUME = licensing.Statement(
    "SELECT * FROM licentia_consume(:hash, :license_id, :version, :meter, :period, :start, "
    ":end, :limit, :amount, :now)"
)
_ATTEMPTS = 3


@dataclass(frozen=True)
class Consumed:
    response: UsageResponse
    replayed: bool


class _Changed(Exception):
    """The license changed between the read and the consumption: start again."""


def _usage_limit(meter: str, used: int, limit: int, amount: int) -> Conflict:
    return Conflict(
        f"Consuming {amount} unit(s) of {meter!r} would pass its limit ({used} of {limit} "
        "used); nothing was consumed",
        code="USAGE_LIMIT",
        meter=meter,
        used=used,
        limit=limit,
        remaining=max(limit - used, 0),
    )


def _consumed_code(consumed: Consumed) -> str:
    return "REPLAYED" if consumed.replayed else "OK"


@licensing.counted("usage", _consumed_code)
async def consume(
    pool: asyncpg.Pool,
    caller: licensing.Caller,
    kek: bytes,
    data: UsageRequest,
    idempotency_key: str | None,
    *,
    now: datetime | None = None,
) -> Consumed:
    """Consume ``data.amount`` units of a meter (negative: give back), all or nothing.

    ``now`` is the clock (tests move it across periods); whole seconds, like the tokens."""
    if idempotency_key is None:
        raise InvalidInput(
            "Consuming usage needs an Idempotency-Key header (a new unique string per "
            "consumption; a retry sends the same one)",
            code="IDEMPOTENCY_KEY_REQUIRED",
        )
    for _ in range(_ATTEMPTS):
        at = rules.whole_second(now) if now is not None else rules.current_second()
        try:
            async with pooled_transaction(pool) as conn:
                return await _consume(conn, caller, kek, data, idempotency_key, at)
        except _Changed:
            continue
    raise Conflict("The license changed during the call; try again", code="LICENSE_CHANGED")


async def _consume(
    conn: asyncpg.Connection,
    caller: licensing.Caller,
    kek: bytes,
    data: UsageRequest,
    key: str,
    now: datetime,
) -> Consumed:
    key_hash = hash_license_key(data.license_key)
    fp = fingerprint_hash(data.fingerprint) if data.fingerprint is not None else None
    row = await _READ.row(conn, hash=key_hash, fp=fp, now=now)
    if row is None:
        await licensing.count_unknown_key(caller)
        raise NotFound("No license has this key", code="LICENSE_NOT_FOUND")
    lic = licensing.HotLicense.from_row(row, now)
    lic.refuse_unless_usable(data.product)
    if fp is not None and row["seat"] is None:
        raise NotFound(
            "This machine holds no seat of this license; activate it first", code="NOT_ACTIVATED"
        )
    spec = json_object(row["meters"]).get(data.meter)
    if spec is None:
        raise NotFound(f"This license has no meter {data.meter!r}", code="METER_NOT_FOUND")
    limit = rules.meter_limit(lic.terms.features, data.meter)
    if limit is None:
        raise Conflict(
            f"This license's {data.meter!r} is not a limit (an integer >= 0); ask the vendor",
            code="METER_MISCONFIGURED",
        )
    period = rules.usage_period(spec.get("period"), now)

    scope = f"license:{lic.terms.id}:usage"
    request = idempotency.request_hash(msgspec.json.encode(data, order="sorted"))
    stored = await idempotency.claim(conn, kek, scope=scope, key=key, fingerprint=request)
    if stored is not None:
        return Consumed(msgspec.json.decode(stored.body, type=UsageResponse), replayed=True)

    signer, trust = await caller.keyring.signer_and_trust()  # before the change: no key, no use
    found = await _CONSUME.row(
        conn,
        hash=key_hash,
        license_id=lic.terms.id,
        version=lic.version,
        meter=data.meter,
        period=spec.get("period"),
        start=period.start,
        end=period.end,
        limit=limit,
        amount=data.amount,
        now=now,
    )
    assert found is not None
    if found["outcome"] == "changed":
        raise _Changed
    if found["outcome"] == "limit":
        raise _usage_limit(data.meter, found["used"], limit, data.amount)
    used: int = found["used"]
    token = issue_usage_token(
        signer,
        lic.terms.subject(),
        issuer=caller.settings.issuer,
        now=now,
        lifetime=timedelta(seconds=caller.settings.license_token_ttl_seconds),
        meter=data.meter,
        used=used,
        limit=limit,
        period_end=period.end,
    ).token
    response = UsageResponse(
        meter=data.meter,
        used=used,
        limit=limit,
        remaining=max(limit - used, 0),
        period_ends_at=period.end,
        token=token,
        **licensing.trust_members(trust),
    )
    await idempotency.complete(
        conn, kek, scope=scope, key=key, status=200, body=msgspec.json.encode(response)
    )
    return Consumed(response, replayed=False)


# --- reading and resetting (admin API, console, portal) --------------------------------------


@dataclass(frozen=True)
class _Meter:
    name: str
    period: str | None
    limit: int


async def _license_meters(
    session: AsyncSession, actor: Actor, license_id: uuid.UUID, now: datetime
) -> tuple[uuid.UUID, list[_Meter]]:
    """The license's organization and meters (404 unless the caller may see the license)."""
    read = await license_admin.get_license(session, principal_of(actor), license_id, now=now)
    meters = await session.scalar(
        select(Tier.meters)
        .join(Product, Product.id == Tier.product_id)
        .where(Product.code == read.product, Tier.code == read.tier)
    )
    return read.organization_id, [
        _Meter(name, spec.get("period"), rules.meter_limit(read.features, name) or 0)
        for name, spec in sorted((meters or {}).items())
    ]


def _is_current(row: Any, meter: _Meter, period: rules.UsagePeriod) -> bool:
    return row.period == meter.period and row.period_start == period.start


async def license_usage(
    session: AsyncSession,
    actor: Actor,
    license_id: uuid.UUID,
    *,
    now: datetime | None = None,
) -> LicenseUsage:
    """Each meter of the license: the current period's count and the past periods'."""
    now = now or datetime.now(UTC)
    organization_id, meters = await _license_meters(session, actor, license_id, now)
    newest = (
        func.row_number()
        .over(
            partition_by=UsageRow.meter,
            order_by=UsageRow.period_start.desc().nulls_first(),
        )
        .label("n")
    )
    ranked = (
        select(UsageRow.meter, UsageRow.period, UsageRow.period_start, UsageRow.period_end)
        .add_columns(UsageRow.used, newest)
        .where(
            UsageRow.license_id == license_id,
            UsageRow.organization_id == organization_id,
        )
        .subquery()
    )
    rows = (
        await session.execute(
            select(ranked).where(ranked.c.n <= HISTORY_PERIODS + 1).order_by(ranked.c.n)
        )
    ).all()
    shown = []
    for meter in meters:
        period = rules.usage_period(meter.period, now)
        mine = [r for r in rows if r.meter == meter.name]
        current = next((r for r in mine if _is_current(r, meter, period)), None)
        used = current.used if current is not None else 0
        past = [
            r
            for r in mine
            if r is not current and (period.start is None or (r.period_start or now) < period.start)
        ]
        shown.append(
            MeterUsage(
                meter=meter.name,
                period=meter.period,  # type: ignore[arg-type]
                limit=meter.limit,
                used=used,
                remaining=max(meter.limit - used, 0),
                period_start=period.start,
                period_ends_at=period.end,
                history=[
                    PeriodUsage(r.period_start, r.period_end, r.used)
                    for r in past[:HISTORY_PERIODS]
                ],
            )
        )
    return LicenseUsage(license_id=license_id, meters=shown)


async def reset_usage(
    session: AsyncSession,
    actor: Actor,
    license_id: uuid.UUID,
    meter: str | None = None,
    *,
    now: datetime | None = None,
) -> LicenseUsage:
    """The current period of one meter (or of every meter) starts again from zero; audited
    with the counts it had. Past periods are kept."""
    now = now or datetime.now(UTC)
    organization_id, meters = await _license_meters(session, actor, license_id, now)
    if meter is not None:
        meters = [m for m in meters if m.name == meter]
        if not meters:
            raise NotFound(f"This license has no meter {meter!r}", code="METER_NOT_FOUND")
    before: dict[str, int] = {}
    for each in meters:
        period = rules.usage_period(each.period, now)
        current = (
            UsageRow.license_id == license_id,
            UsageRow.organization_id == organization_id,
            UsageRow.meter == each.name,
            UsageRow.period.is_not_distinct_from(each.period),
            UsageRow.period_start.is_not_distinct_from(period.start),
        )
        old = await session.scalar(select(UsageRow.used).where(*current).with_for_update())
        await session.execute(update(UsageRow).where(*current).values(used=0, updated_at=now))
        before[each.name] = old or 0
    await record(
        session,
        actor,
        "license.usage_reset",
        "license",
        license_id,
        organization_id=organization_id,
        data={"meters": before},
    )
    return await license_usage(session, actor, license_id, now=now)

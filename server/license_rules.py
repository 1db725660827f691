"""The license rules, each written once, for the admin API (ORM) and the product API (asyncpg).

- **status**: stored (``active``/``suspended``/``revoked``), derived expiry, not yet valid,
  usable now, and the refusal (code + message) for each status that is not usable;
- **the live seat**: an activation holds a seat while it is not deactivated and its lease plus
  the tier's grace days has not run out;
- **the deactivation limit**: deactivations the customer made (reason ``user``) in the last
  24 hours, per license and organization, at most the tier's number;
- **the expiry behaviour** of a tier: ``restrict`` (an expired license is refused) or
  ``fallback`` (perpetual fallback: an expired license stays usable, and ``updates_until``,
  its expiry, says which builds it covers);
- **a trial's status**: running, ended or converted;
- **the lease end** of an activation token, and **the token subject** of a license.

A rule that must also run inside PostgreSQL is written here twice, side by side, from the same
constants: a Python function, and the SQL fragment the statements embed (``..._sql``). The
fragments use ``:named`` parameters (SQLAlchemy ``text()`` and ``server.product_licensing``'s
statements both take them) and table aliases given by the caller.
tests/server/test_license_rules.py runs one table of cases through both, against the real
PostgreSQL, and fails on any disagreement.

Time is counted in whole seconds for the license's own bounds (``starts_at``, ``expires_at``),
as tokens count it: a license that expires within the current second is already expired.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from keys.tokens import TokenSubject
from server.errors import DeactivationLimitReached, LicenseRefused

Status = Literal["active", "expired", "suspended", "revoked", "not_yet_valid"]
ShownStatus = Literal["active", "expired", "suspended", "revoked"]

# --- license keys ------------------------------------------------------------------------


def normalize_license_key(key: str) -> str:
    return key.strip().upper()


def hash_license_key(key: str) -> bytes:
    """What ``licenses.key_hash`` stores: SHA-256 of the normalized key."""
    return hashlib.sha256(normalize_license_key(key).encode()).digest()


# --- time ----------------------------------------------------------------------------------


def whole_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def current_second() -> datetime:
    """Now in whole seconds, like the tokens' ``iat``/``exp``, so a lease stored equals a
    token's."""
    return whole_second(datetime.now(UTC))


def _second_sql(expression: str) -> str:
    return f"date_trunc('second', CAST({expression} AS timestamptz))"


# --- status --------------------------------------------------------------------------------


class Refusal(NamedTuple):
    code: str
    """``EXPIRED`` ...; validate answers with it, the other calls raise ``LICENSE_<code>``."""
    detail: str


REFUSALS: Mapping[str, Refusal] = {
    "expired": Refusal("EXPIRED", "The license has expired"),
    "suspended": Refusal("SUSPENDED", "The license is suspended"),
    "revoked": Refusal("REVOKED", "The license has been revoked"),
    "not_yet_valid": Refusal("NOT_YET_VALID", "The license is not valid yet"),
}


def _expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and whole_second(expires_at) <= whole_second(now)


def _expired_sql(license: str, now: str) -> str:
    return (
        f"{license}.expires_at IS NOT NULL "
        f"AND {_second_sql(f'{license}.expires_at')} <= {_second_sql(now)}"
    )


def _not_started(starts_at: datetime | None, now: datetime) -> bool:
    return starts_at is not None and whole_second(starts_at) > whole_second(now)


def _not_started_sql(license: str, now: str) -> str:
    return f"{_second_sql(f'{license}.starts_at')} > {_second_sql(now)}"


def license_status(
    stored: str, starts_at: datetime | None, expires_at: datetime | None, now: datetime
) -> Status:
    """Suspended or revoked as stored; else expired, else not yet valid, else active."""
    if stored != "active":
        return stored  # type: ignore[return-value]
    if _expired(expires_at, now):
        return "expired"
    if _not_started(starts_at, now):
        return "not_yet_valid"
    return "active"


def license_status_sql(license: str = "l", now: str = ":now") -> str:
    """``license_status`` as a SQL expression over the ``licenses`` row aliased ``license``."""
    return (
        f"CASE WHEN {license}.status <> 'active' THEN {license}.status "
        f"WHEN {_expired_sql(license, now)} THEN 'expired' "
        f"WHEN {_not_started_sql(license, now)} THEN 'not_yet_valid' "
        "ELSE 'active' END"
    )


def shown_status(status: Status) -> ShownStatus:
    """What reads show: a license that has not started yet is ``active`` (with its
    ``starts_at``); only using it is refused."""
    return "active" if status == "not_yet_valid" else status


def shown_status_sql(license: str = "l", now: str = ":now") -> str:
    """``shown_status(license_status(...))`` in SQL (the admin list's status filter)."""
    return (
        f"CASE WHEN {license}.status <> 'active' THEN {license}.status "
        f"WHEN {_expired_sql(license, now)} THEN 'expired' ELSE 'active' END"
    )


# --- expiry behaviour (perpetual fallback) --------------------------------------------------

ExpiryBehavior = Literal["restrict", "fallback"]
RESTRICT: ExpiryBehavior = "restrict"
FALLBACK: ExpiryBehavior = "fallback"
EXPIRY_BEHAVIORS: tuple[ExpiryBehavior, ...] = (RESTRICT, FALLBACK)


def usable(status: Status, expiry_behavior: str = RESTRICT) -> bool:
    """Active; or expired under a ``fallback`` tier (it keeps working for the builds released
    until its expiry). Suspended, revoked and not yet valid are never usable."""
    return status == "active" or (status == "expired" and expiry_behavior == FALLBACK)


def updates_until(expires_at: datetime | None, expiry_behavior: str) -> datetime | None:
    """The last release date a fallback license covers (its expiry, in whole seconds);
    ``None`` for a ``restrict`` tier or a license without an expiry (every build)."""
    if expiry_behavior != FALLBACK or expires_at is None:
        return None
    return whole_second(expires_at)


def updates_until_sql(license: str = "l", tier: str = "t") -> str:
    """``updates_until`` over the ``licenses`` row ``license`` and its ``tiers`` row ``tier``."""
    return (
        f"CASE WHEN {tier}.expiry_behavior = '{FALLBACK}' "
        f"THEN {_second_sql(f'{license}.expires_at')} END"
    )


def refusal(status: Status, expiry_behavior: str = RESTRICT) -> Refusal | None:
    """``None`` when the license can be used now, else why not."""
    return None if usable(status, expiry_behavior) else REFUSALS[status]


def refuse_unless_usable(status: Status, expiry_behavior: str = RESTRICT) -> None:
    """Raise ``LicenseRefused`` (``LICENSE_EXPIRED`` ...) unless the license can be used now."""
    refused = refusal(status, expiry_behavior)
    if refused is not None:
        raise LicenseRefused(refused.detail, code=f"LICENSE_{refused.code}")


# --- trials -------------------------------------------------------------------------------

TrialStatus = Literal["running", "ended", "converted"]
TRIAL_STATUSES: tuple[TrialStatus, ...] = ("running", "ended", "converted")


def trial_status(ends_at: datetime, converted_at: datetime | None, now: datetime) -> TrialStatus:
    """Converted once its machine activated a real license of the product; else ended from
    its end (whole seconds, like a license's expiry), else running."""
    if converted_at is not None:
        return "converted"
    return "ended" if whole_second(ends_at) <= whole_second(now) else "running"


def trial_status_sql(trial: str = "tr", now: str = ":now") -> str:
    """``trial_status`` over the ``trials`` row aliased ``trial``."""
    return (
        f"CASE WHEN {trial}.converted_at IS NOT NULL THEN 'converted' "
        f"WHEN {_second_sql(f'{trial}.ends_at')} <= {_second_sql(now)} THEN 'ended' "
        "ELSE 'running' END"
    )


# --- the live seat -------------------------------------------------------------------------


def holds_seat(
    deactivated_at: datetime | None, lease_expires_at: datetime, grace_days: int, now: datetime
) -> bool:
    """Not deactivated, and the lease plus the tier's grace days has not run out."""
    return deactivated_at is None and lease_expires_at + timedelta(days=grace_days) > now


def _lease_holds_sql(activation: str, grace_days: str, now: str) -> str:
    return f"{activation}.lease_expires_at + make_interval(days => {grace_days}) > {now}"


def live_seat_sql(
    activation: str = "a", grace_days: str = "t.lease_grace_days", now: str = ":now"
) -> str:
    """``holds_seat`` over the ``activations`` row aliased ``activation``."""
    return (
        f"{activation}.deactivated_at IS NULL AND {_lease_holds_sql(activation, grace_days, now)}"
    )


def stale_seat_sql(
    activation: str = "a", grace_days: str = "t.lease_grace_days", now: str = ":now"
) -> str:
    """Not deactivated yet, but no longer holding a seat: the lease ran out past its grace."""
    return (
        f"{activation}.deactivated_at IS NULL "
        f"AND NOT ({_lease_holds_sql(activation, grace_days, now)})"
    )


LEASE_EXPIRED = "lease_expired"
"""``deactivation_reason`` of a seat released because its lease ran out past the grace."""


def lease_end(now: datetime, offline_lease_days: int, expires_at: datetime | None) -> datetime:
    """The end of an activation token's offline lease: min(license expiry, now + lease)."""
    end = now + timedelta(days=offline_lease_days)
    return min(end, expires_at) if expires_at is not None else end


# --- named-user seats ----------------------------------------------------------------------

SeatKind = Literal["machine", "user"]
MACHINE_SEATS: SeatKind = "machine"
USER_SEATS: SeatKind = "user"
SEAT_KINDS: tuple[SeatKind, ...] = (MACHINE_SEATS, USER_SEATS)
DEFAULT_MACHINES_PER_USER = 3
"""A ``user`` tier's default: a person's laptop, desktop and one more."""


def effective_max_users(seat_kind: str, tier_max: int | None, override: int | None) -> int | None:
    """How many users may be assigned to a license: ``None`` for a ``machine`` tier (it has
    no users, whatever the license stores); else the license's own ``max_users``, else its
    tier's. The license's override is kept across changes of tier, like ``max_activations``."""
    if seat_kind != USER_SEATS:
        return None
    return tier_max if override is None else override


def user_seat_available(assigned: int, max_users: int) -> bool:
    """Whether one more user may be assigned to a license that has ``assigned`` users."""
    return assigned < max_users


def users_fit(assigned: int, max_users: int | None) -> bool:
    """Whether a license's users still fit a new ``max_users`` (a change of the license or
    of its tier): no fewer seats than users assigned. ``None`` (no named users) always fits."""
    return max_users is None or assigned <= max_users


def user_machine_available(live_user_seats: int, machines_per_user: int) -> bool:
    """Whether a user holding ``live_user_seats`` live seats (``holds_seat``) of a license
    may take one more (``licentia_activate`` holds the SQL twin: ``< v_machines_per_user``
    over the seats ``user_seat_sql`` selects)."""
    return live_user_seats < machines_per_user


def user_seat_sql(activation: str = "a", user: str = ":user_id") -> str:
    """Of the live seats (``live_seat_sql``), those bound to ``user``."""
    return f"{activation}.user_id = {user}"


# --- the deactivation limit ----------------------------------------------------------------

DEACTIVATION_WINDOW = timedelta(hours=24)
DEFAULT_MAX_DEACTIVATIONS_PER_DAY = 3
"""A tier's default: enough for honest moves (a new laptop, a reinstall, a replaced machine),
small enough that a shared key cannot hop from machine to machine. Each deactivation lets one
more machine in, so a license reaches at most ``max_activations + limit`` machines in 24
hours (docs/api.md, "Freeing a seat")."""
USER_DEACTIVATION = "user"
"""The reason counted by the limit: seats the customer freed (from the product or the
portal/API as an organization's owner or admin); not expired leases, not the vendor's own."""


def counts_toward_limit(deactivated_at: datetime | None, reason: str | None, now: datetime) -> bool:
    return (
        reason == USER_DEACTIVATION
        and deactivated_at is not None
        and deactivated_at > now - DEACTIVATION_WINDOW
    )


def deactivation_allowed(recent: int, limit: int) -> bool:
    """``recent``: deactivations that count toward the limit, not including this one."""
    return recent < limit


def deactivation_limit_reached(limit: int) -> DeactivationLimitReached:
    return DeactivationLimitReached(
        f"This license allows {limit} deactivation(s) in 24 hours; try again later",
        code="DEACTIVATION_LIMIT",
    )


def recent_deactivations_sql(
    license_id: str = ":license_id", organization_id: str = ":org", now: str = ":now"
) -> str:
    """How many deactivations of one license count toward the limit (``counts_toward_limit``)."""
    window = int(DEACTIVATION_WINDOW.total_seconds())
    return (
        "SELECT count(*) FROM activations d "
        f"WHERE d.license_id = {license_id} AND d.organization_id = {organization_id} "
        f"AND d.deactivation_reason = '{USER_DEACTIVATION}' "
        f"AND d.deactivated_at > CAST({now} AS timestamptz) - make_interval(secs => {window})"
    )


def deactivation_allowed_sql(
    limit: str = ":limit",
    license_id: str = ":license_id",
    organization_id: str = ":org",
    now: str = ":now",
) -> str:
    return f"({recent_deactivations_sql(license_id, organization_id, now)}) < {limit}"


# --- what a license says -------------------------------------------------------------------


def effective_features(
    tier_features: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The tier's features overlaid by the license's own."""
    return {**tier_features, **overrides}


def effective_max_activations(tier_max: int, override: int | None) -> int:
    return tier_max if override is None else override


def json_object(value: Any) -> dict[str, Any]:
    """A jsonb object as a dict: decoded already by a codec, else JSON text; ``{}`` for null."""
    if value is None:
        return {}
    decoded = json.loads(value) if isinstance(value, str | bytes) else value
    if not isinstance(decoded, dict):
        raise TypeError(f"expected a JSON object, got {type(decoded).__name__}")
    return decoded


def as_uuid(value: Any) -> uuid.UUID:
    """asyncpg's own UUID type as the standard one (what schemas and tokens expect)."""
    return value if type(value) is uuid.UUID else uuid.UUID(bytes=value.bytes)


@dataclass(frozen=True, slots=True)
class LicenseTerms:
    """A license as both APIs see it: the stored row with the tier's defaults applied."""

    id: uuid.UUID
    organization_id: uuid.UUID
    product: str
    tier: str
    stored_status: str
    starts_at: datetime | None
    expires_at: datetime | None
    features: dict[str, Any]
    max_activations: int
    expiry_behavior: str = RESTRICT
    is_trial: bool = False

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LicenseTerms:
        """From a row with the columns ``id``, ``organization_id``, ``product`` (code), ``tier``
        (code), ``status``, ``starts_at``, ``expires_at``, ``features``, ``tier_features``,
        ``max_activations``, ``tier_max_activations``, ``expiry_behavior`` and ``is_trial``
        (an asyncpg record or a mapping)."""
        return cls(
            id=as_uuid(row["id"]),
            organization_id=as_uuid(row["organization_id"]),
            product=row["product"],
            tier=row["tier"],
            stored_status=row["status"],
            starts_at=row["starts_at"],
            expires_at=row["expires_at"],
            features=effective_features(
                json_object(row["tier_features"]), json_object(row["features"])
            ),
            max_activations=effective_max_activations(
                row["tier_max_activations"], row["max_activations"]
            ),
            expiry_behavior=row["expiry_behavior"],
            is_trial=row["is_trial"],
        )

    def status(self, now: datetime) -> Status:
        return license_status(self.stored_status, self.starts_at, self.expires_at, now)

    def usable(self, now: datetime) -> bool:
        return usable(self.status(now), self.expiry_behavior)

    def refuse_unless_usable(self, now: datetime) -> None:
        refuse_unless_usable(self.status(now), self.expiry_behavior)

    @property
    def updates_until(self) -> datetime | None:
        return updates_until(self.expires_at, self.expiry_behavior)

    @property
    def _ends(self) -> datetime | None:
        """When using the license ends: never for a fallback license (its expiry ends only
        its updates), else its expiry."""
        if self.expires_at is None or self.expiry_behavior == FALLBACK:
            return None
        return whole_second(self.expires_at)

    def subject(self) -> TokenSubject:
        """The claims every token of this license carries. A fallback license's tokens say
        ``license_expires_at`` null and carry ``updates_until`` instead."""
        return TokenSubject(
            license_id=str(self.id),
            organization_id=str(self.organization_id),
            product=self.product,
            tier=self.tier,
            features=self.features,
            max_activations=self.max_activations,
            license_expires_at=self._ends,
            updates_until=self.updates_until,
            trial=self.is_trial,
        )

    def lease_end(self, now: datetime, offline_lease_days: int) -> datetime:
        return lease_end(now, offline_lease_days, self._ends)


# --- usage meters ---------------------------------------------------------------------------

MeterPeriod = Literal["day", "month"]
METER_PERIODS: tuple[MeterPeriod, ...] = ("day", "month")


class UsagePeriod(NamedTuple):
    """The period a meter counts in at some moment: ``[start, end)`` in UTC; both ``None`` for
    a meter that never resets. A new period starts from zero by itself (a new counter row)."""

    start: datetime | None
    end: datetime | None


def usage_period(period: str | None, now: datetime) -> UsagePeriod:
    """``day``: the UTC day of ``now``; ``month``: its UTC calendar month; ``None``: forever."""
    if period is None:
        return UsagePeriod(None, None)
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return UsagePeriod(start, start + timedelta(days=1))
    if period == "month":
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else (start.replace(month=start.month + 1))
        )
        return UsagePeriod(start, end)
    raise ValueError(f"not a meter period: {period!r}")


def meter_limit(features: Mapping[str, Any], meter: str) -> int | None:
    """A meter's limit: the license's effective feature of the meter's name (the tier's,
    unless the license overrides it). ``None`` when it is not a non-negative integer."""
    value = features.get(meter)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def usage_allowed(used: int, amount: int, limit: int) -> bool:
    """All or nothing: consuming ``amount`` (> 0) must not take ``used`` past ``limit``; giving
    units back (``amount`` <= 0) is always allowed and never goes below zero. The consume
    statement (migration 0008, ``licentia_consume``) applies the same condition under the
    counter's row lock; tests/server/metering/test_usage.py runs one table of cases through
    both."""
    return amount <= 0 or used + amount <= limit


def used_after(used: int, amount: int) -> int:
    return max(used + amount, 0)

"""Every license rule that exists in SQL and in Python agrees with itself.

One table of cases per rule runs through the Python function and through the SQL fragment
(on the real PostgreSQL of the test session); any disagreement fails. The admin API (ORM) and
the product API (asyncpg) embed these same fragments and call these same functions.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import factories
import psycopg
import pytest

from server import license_rules as rules
from server.product_licensing.service import Statement

NOW = datetime(2027, 3, 10, 12, 0, 0, 400_000, tzinfo=UTC)
S = timedelta(seconds=1)
US = timedelta(microseconds=1)
DAY = timedelta(days=1)


def _query(database, sql: str, params: dict[str, Any]) -> Any:
    async def work() -> Any:
        conn = await asyncpg.connect(database.sync(database.owner_url))
        try:
            async with conn.transaction():
                statement = Statement(sql)
                value = await statement.value(conn, **params)
                raise _Rollback(value)
        except _Rollback as done:
            return done.value
        finally:
            await conn.close()

    return asyncio.run(work())


class _Rollback(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


# --- status, derived expiry, not yet valid -------------------------------------------------

STATUS_CASES = [
    # stored, starts_at, expires_at, expected
    ("active", NOW - DAY, None, "active"),
    ("active", NOW - DAY, NOW + DAY, "active"),
    ("active", NOW - DAY, NOW + S, "active"),
    ("active", NOW - DAY, NOW, "expired"),
    ("active", NOW - DAY, NOW + 500_000 * US, "expired"),  # same whole second as now
    ("active", NOW - DAY, NOW - 400_000 * US, "expired"),
    ("active", NOW - DAY, NOW - DAY, "expired"),
    ("active", NOW, None, "active"),
    ("active", NOW + 500_000 * US, None, "active"),  # started within this second
    ("active", NOW + S, None, "not_yet_valid"),
    ("active", NOW + DAY, NOW + 2 * DAY, "not_yet_valid"),
    ("active", NOW + DAY, NOW - DAY, "expired"),  # expired wins over not yet valid
    ("suspended", NOW - DAY, None, "suspended"),
    ("suspended", NOW - DAY, NOW - DAY, "suspended"),
    ("suspended", NOW + DAY, None, "suspended"),
    ("revoked", NOW - DAY, NOW - DAY, "revoked"),
    ("revoked", NOW + DAY, None, "revoked"),
]


def _status_sql(fragment: str) -> str:
    return (
        f"SELECT {fragment} FROM (VALUES (CAST(:stored AS text), CAST(:starts AS timestamptz), "
        "CAST(:expires AS timestamptz))) AS l(status, starts_at, expires_at)"
    )


@pytest.mark.parametrize(("stored", "starts", "expires", "expected"), STATUS_CASES)
def test_status_agrees(database, stored, starts, expires, expected) -> None:
    params = {"stored": stored, "starts": starts, "expires": expires, "now": NOW}
    python = rules.license_status(stored, starts, expires, NOW)
    sql = _query(database, _status_sql(rules.license_status_sql("l", ":now")), params)
    assert (python, sql) == (expected, expected)
    shown = _query(database, _status_sql(rules.shown_status_sql("l", ":now")), params)
    assert rules.shown_status(python) == shown
    assert rules.usable(python) == (expected == "active")
    if expected != "active":
        assert rules.refusal(python) == rules.REFUSALS[expected]


def test_every_refusal_has_a_code_and_a_message() -> None:
    for status in ("expired", "suspended", "revoked", "not_yet_valid"):
        refused = rules.refusal(status)  # type: ignore[arg-type]
        assert refused is not None and refused.code == status.upper() and refused.detail
        with pytest.raises(rules.LicenseRefused) as caught:
            rules.refuse_unless_usable(status)  # type: ignore[arg-type]
        assert caught.value.code == f"LICENSE_{refused.code}"
    assert rules.refusal("active") is None


# --- perpetual fallback ------------------------------------------------------------------------

FALLBACK_CASES = [
    # stored, expires_at, expiry_behavior, usable, updates_until
    ("active", NOW + DAY, "fallback", True, NOW.replace(microsecond=0) + DAY),
    ("active", NOW + 500_000 * US, "fallback", True, NOW.replace(microsecond=0)),  # expired
    ("active", NOW - DAY, "fallback", True, NOW.replace(microsecond=0) - DAY),
    ("active", NOW - DAY, "restrict", False, None),
    ("active", NOW + DAY, "restrict", True, None),
    ("active", None, "fallback", True, None),
    ("suspended", NOW - DAY, "fallback", False, NOW.replace(microsecond=0) - DAY),
    ("revoked", NOW + DAY, "fallback", False, NOW.replace(microsecond=0) + DAY),
]


@pytest.mark.parametrize(("stored", "expires", "behavior", "usable", "until"), FALLBACK_CASES)
def test_fallback_agrees(database, stored, expires, behavior, usable, until) -> None:
    params = {"stored": stored, "expires": expires, "behavior": behavior, "now": NOW}
    source = (
        "FROM (VALUES (CAST(:stored AS text), CAST(:expires AS timestamptz), "
        "CAST(:now AS timestamptz) - interval '2 days')) AS l(status, expires_at, starts_at), "
        "(VALUES (CAST(:behavior AS text))) AS t(expiry_behavior)"
    )
    sql_until = _query(database, f"SELECT {rules.updates_until_sql('l', 't')} {source}", params)
    sql_status = _query(
        database, f"SELECT {rules.license_status_sql('l', ':now')} {source}", params
    )
    status = rules.license_status(stored, NOW - 2 * DAY, expires, NOW)
    assert sql_status == status
    assert rules.usable(status, behavior) == usable
    assert (rules.refusal(status, behavior) is None) == usable
    assert rules.updates_until(expires, behavior) == sql_until == until


# --- trials -------------------------------------------------------------------------------------

TRIAL_CASES = [
    # ends_at, converted_at, expected
    (NOW + DAY, None, "running"),
    (NOW + S, None, "running"),
    (NOW + 500_000 * US, None, "ended"),  # ends within the current second
    (NOW, None, "ended"),
    (NOW - DAY, None, "ended"),
    (NOW + DAY, NOW - S, "converted"),
    (NOW - DAY, NOW - 2 * DAY, "converted"),
]


@pytest.mark.parametrize(("ends", "converted", "expected"), TRIAL_CASES)
def test_trial_status_agrees(database, ends, converted, expected) -> None:
    sql = _query(
        database,
        f"SELECT {rules.trial_status_sql('tr', ':now')} FROM (VALUES (CAST(:ends AS timestamptz), "
        "CAST(:converted AS timestamptz))) AS tr(ends_at, converted_at)",
        {"ends": ends, "converted": converted, "now": NOW},
    )
    assert (rules.trial_status(ends, converted, NOW), sql) == (expected, expected)


# --- the live seat ---------------------------------------------------------------------------

SEAT_CASES = [
    # deactivated_at, lease_expires_at, grace_days, expected
    (None, NOW + DAY, 7, True),
    (None, NOW - DAY, 7, True),
    (None, NOW - 7 * DAY + US, 7, True),
    (None, NOW - 7 * DAY, 7, False),  # exactly at the end of the grace period
    (None, NOW - 8 * DAY, 7, False),
    (None, NOW + US, 0, True),
    (None, NOW, 0, False),
    (None, NOW - S, 0, False),
    (NOW - DAY, NOW + DAY, 7, False),
    (NOW, NOW + DAY, 0, False),
]


@pytest.mark.parametrize(("deactivated", "lease", "grace", "expected"), SEAT_CASES)
def test_live_seat_agrees(database, deactivated, lease, grace, expected) -> None:
    source = (
        "FROM (VALUES (CAST(:deactivated AS timestamptz), CAST(:lease AS timestamptz))) "
        "AS a(deactivated_at, lease_expires_at)"
    )
    params = {"deactivated": deactivated, "lease": lease, "grace": grace, "now": NOW}
    live = _query(database, f"SELECT {rules.live_seat_sql('a', ':grace', ':now')} {source}", params)
    stale = _query(
        database, f"SELECT {rules.stale_seat_sql('a', ':grace', ':now')} {source}", params
    )
    python = rules.holds_seat(deactivated, lease, grace, NOW)
    assert (python, live) == (expected, expected)
    assert stale == (deactivated is None and not expected)


# --- the deactivation limit ------------------------------------------------------------------

ORG, OTHER_ORG, LICENSE, OTHER_LICENSE = (uuid.uuid4() for _ in range(4))

# (deactivated_at, reason, organization, license)
HISTORY = {
    "none": [],
    "live seats only": [(None, None, ORG, LICENSE), (None, None, ORG, LICENSE)],
    "two by the user today": [
        (NOW - S, "user", ORG, LICENSE),
        (NOW - 23 * 3600 * S, "user", ORG, LICENSE),
    ],
    "one exactly 24 hours ago": [
        (NOW - DAY, "user", ORG, LICENSE),
        (NOW - S, "user", ORG, LICENSE),
    ],
    "one a microsecond inside": [(NOW - DAY + US, "user", ORG, LICENSE)],
    "expired leases and the vendor": [
        (NOW - S, "lease_expired", ORG, LICENSE),
        (NOW - S, "admin", ORG, LICENSE),
        (NOW - S, "user", ORG, LICENSE),
    ],
    "another organization's rows": [
        (NOW - S, "user", OTHER_ORG, LICENSE),
        (NOW - S, "user", OTHER_ORG, LICENSE),
        (NOW - S, "user", ORG, LICENSE),
    ],
    "another license": [
        (NOW - S, "user", ORG, OTHER_LICENSE),
        (NOW - S, "user", ORG, OTHER_LICENSE),
    ],
}


def _setup(db: psycopg.Connection, history: list[tuple[Any, ...]]) -> None:
    """The rows of a history (made as the owner, who bypasses row-level security)."""
    made = factories.product(db, f"p-{uuid.uuid4()}", {"t": factories.Tier(max_activations=5)})
    factories.organization(db, "a", id=ORG)
    factories.organization(db, "b", id=OTHER_ORG)
    licenses = {
        license_id: factories.license(db, ORG, made.code, "t", id=license_id)
        for license_id in (LICENSE, OTHER_LICENSE)
    }
    for i, (deactivated, reason, org, license_id) in enumerate(history):
        factories.activation(
            db,
            licenses[license_id],
            organization_id=org,
            fingerprint_hash=f"fp{i}",
            lease_expires_at=NOW + DAY,
            deactivated_at=deactivated,
            deactivation_reason=reason,
        )


@pytest.mark.parametrize("history", HISTORY)
@pytest.mark.parametrize("limit", [0, 1, 2, 3])
def test_deactivation_limit_agrees(database, owner_db, history, limit) -> None:
    rows = HISTORY[history]
    _setup(owner_db, rows)
    python_recent = sum(
        rules.counts_toward_limit(deactivated, reason, NOW)
        for deactivated, reason, org, license_id in rows
        if org == ORG and license_id == LICENSE
    )
    params = {"license_id": LICENSE, "org": ORG, "now": NOW, "limit": limit}
    sql_recent = _query(database, rules.recent_deactivations_sql(), params)
    sql_allowed = _query(database, f"SELECT {rules.deactivation_allowed_sql()}", params)
    assert sql_recent == python_recent
    assert sql_allowed == rules.deactivation_allowed(python_recent, limit)


# --- lease end and token subject -------------------------------------------------------------


def test_lease_end_is_capped_by_the_license_expiry() -> None:
    assert rules.lease_end(NOW, 7, None) == NOW + 7 * DAY
    assert rules.lease_end(NOW, 7, NOW + DAY) == NOW + DAY
    assert rules.lease_end(NOW, 7, NOW + 8 * DAY) == NOW + 7 * DAY


def test_terms_from_a_row() -> None:
    row = {
        "id": LICENSE,
        "organization_id": ORG,
        "product": "p",
        "tier": "t",
        "status": "active",
        "starts_at": NOW - DAY,
        "expires_at": NOW + DAY,
        "features": '{"b": 2}',
        "tier_features": {"a": 1, "b": 1},
        "max_activations": None,
        "tier_max_activations": 3,
        "expiry_behavior": "restrict",
        "is_trial": False,
    }
    terms = rules.LicenseTerms.from_row(row)
    assert terms.features == {"a": 1, "b": 2} and terms.max_activations == 3
    assert terms.status(NOW) == "active" and terms.status(NOW + DAY) == "expired"
    subject = terms.subject()
    assert subject.license_id == str(LICENSE) and subject.organization_id == str(ORG)
    assert subject.license_expires_at == rules.whole_second(NOW + DAY)
    assert terms.lease_end(NOW, 7) == rules.whole_second(NOW + DAY)
    assert subject.updates_until is None and subject.trial is False
    assert not terms.usable(NOW + DAY)


def test_fallback_terms_outlive_their_expiry() -> None:
    """A fallback license's tokens say it never ends (``license_expires_at`` null, leases not
    capped) and carry ``updates_until``; it stays usable after its expiry."""
    row = {
        "id": LICENSE,
        "organization_id": ORG,
        "product": "p",
        "tier": "t",
        "status": "active",
        "starts_at": NOW - DAY,
        "expires_at": NOW + DAY,
        "features": {},
        "tier_features": {},
        "max_activations": None,
        "tier_max_activations": 3,
        "expiry_behavior": "fallback",
        "is_trial": True,
    }
    terms = rules.LicenseTerms.from_row(row)
    subject = terms.subject()
    assert subject.license_expires_at is None and subject.trial is True
    assert subject.updates_until == rules.whole_second(NOW + DAY)
    assert terms.lease_end(NOW, 7) == NOW + 7 * DAY
    assert terms.usable(NOW + 2 * DAY) and terms.status(NOW + 2 * DAY) == "expired"
    terms.refuse_unless_usable(NOW + 2 * DAY)
    revoked = rules.LicenseTerms.from_row({**row, "status": "revoked"})
    with pytest.raises(rules.LicenseRefused):
        revoked.refuse_unless_usable(NOW)


# --- the frozen copy in the validation function (migration 0004) ----------------------------


@pytest.mark.parametrize(
    ("function", "fragments"),
    [
        ("licentia_license", [rules.updates_until_sql("l", "t")]),
        (
            "licentia_validate",
            [
                rules.live_seat_sql("a", "t.lease_grace_days", "p_now"),
                rules.updates_until_sql("l", "t"),
            ],
        ),
        ("licentia_check_in", [rules.live_seat_sql("a", "v_grace", "p_now")]),
        (
            "licentia_activate",
            [
                rules.live_seat_sql("a", "v_grace", "p_now"),
                rules.stale_seat_sql("a", "v_grace", "p_now"),
                # named-user seats (migration 0009)
                rules.user_seat_sql("a", "p_user_id"),
            ],
        ),
        # the webhook outbox's license snapshot (migration 0006)
        ("licentia_webhook_outbox", [rules.live_seat_sql("a", "t.lease_grace_days", "NEW.at")]),
    ],
)
def test_functions_hold_the_current_seat_rules(database, function, fragments) -> None:
    """The functions' copies of the rule are the rule's current text: a changed rule needs a
    migration that redefines them."""
    source = _query(
        database, "SELECT prosrc FROM pg_proc WHERE proname = :name", {"name": function}
    )
    for fragment in fragments:
        assert fragment in source


@pytest.mark.parametrize(("deactivated", "lease", "grace", "expected"), SEAT_CASES)
def test_validate_function_agrees_on_live_seats(
    database, owner_db, deactivated, lease, grace, expected
) -> None:
    key = f"LK-{uuid.uuid4()}"
    made = factories.product(
        owner_db, f"p-{uuid.uuid4()}", {"t": factories.Tier(5, {}, lease_grace_days=grace)}
    )
    factories.organization(owner_db, "a", id=ORG)
    factories.activation(
        owner_db,
        factories.license(owner_db, ORG, made.code, "t", key=key),
        fingerprint_hash="fp",
        lease_expires_at=lease,
        deactivated_at=deactivated,
        deactivation_reason=None,
    )
    seats = _query(
        database,
        "SELECT seats::text || ' ' || (seat IS NOT NULL)::text "
        "FROM licentia_validate(:hash, 'fp', :now)",
        {"hash": rules.hash_license_key(key), "now": NOW},
    )
    python = rules.holds_seat(deactivated, lease, grace, NOW)
    assert seats == f"{int(expected)} {str(expected).lower()}"
    assert python == expected


@pytest.mark.parametrize(("stored", "expires", "behavior", "usable", "until"), FALLBACK_CASES)
def test_validate_function_agrees_on_fallback(
    database, owner_db, stored, expires, behavior, usable, until
) -> None:
    """The functions return the tier's expiry behaviour and ``updates_until`` (the frozen
    copy of ``updates_until_sql``), which the licensing service judges with ``usable``."""
    key = f"LK-{uuid.uuid4()}"
    made = factories.product(
        owner_db, f"p-{uuid.uuid4()}", {"t": factories.Tier(5, {}, expiry_behavior=behavior)}
    )
    factories.organization(owner_db, "a", id=ORG)
    license_id = factories.license(
        owner_db,
        ORG,
        made.code,
        "t",
        key=key,
        status=stored,
        starts_at=NOW - 2 * DAY,
        expires_at=expires,
    ).id
    found = _query(
        database,
        "SELECT expiry_behavior || ' ' || "
        "coalesce(extract(epoch FROM updates_until)::bigint::text, '-') "
        "FROM licentia_validate(:hash, NULL, :now)",
        {"hash": rules.hash_license_key(key), "now": NOW},
    )
    row = {
        "id": license_id,
        "organization_id": ORG,
        "product": "p",
        "tier": "t",
        "status": stored,
        "starts_at": NOW - 2 * DAY,
        "expires_at": expires,
        "features": {},
        "tier_features": {},
        "max_activations": None,
        "tier_max_activations": 5,
        "expiry_behavior": behavior,
        "is_trial": False,
    }
    terms = rules.LicenseTerms.from_row(row)
    assert terms.usable(NOW) == usable and terms.updates_until == until
    assert found == f"{behavior} {'-' if until is None else int(until.timestamp())}"


# --- named-user seats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("taken", "limit", "allowed"), [(0, 0, False), (0, 1, True), (1, 1, False), (2, 3, True)]
)
def test_user_seat_limits(taken, limit, allowed) -> None:
    """One more user (``max_users``) or one more machine of a user (``machines_per_user``,
    counted over live seats) only below the limit, as ``licentia_activate`` compares."""
    assert rules.user_seat_available(taken, limit) is allowed
    assert rules.user_machine_available(taken, limit) is allowed


@pytest.mark.parametrize(
    ("seat_kind", "tier_max", "override", "effective"),
    [
        ("user", 10, None, 10),  # the tier's
        ("user", 10, 25, 25),  # the license's own, above the tier's
        ("user", 10, 3, 3),  # ... or below it
        ("user", 10, 0, 0),
        ("machine", None, None, None),  # no named users
        ("machine", None, 5, None),  # an override waits through a machine tier
    ],
)
def test_effective_max_users(seat_kind, tier_max, override, effective) -> None:
    """A license's ``max_users``: its own, else its tier's; none for a machine tier. The
    limit is judged in Python only, under the license's row lock (no SQL twin)."""
    assert rules.effective_max_users(seat_kind, tier_max, override) == effective


@pytest.mark.parametrize(
    ("assigned", "max_users", "fits"),
    [(0, 0, True), (2, 2, True), (3, 2, False), (0, None, True), (5, None, True)],
)
def test_users_fit_a_new_max_users(assigned, max_users, fits) -> None:
    """Lowering ``max_users`` (409 ``USERS_ASSIGNED``) is refused only below the users
    assigned; as many as assigned is fine, and a machine tier (``None``) always fits."""
    assert rules.users_fit(assigned, max_users) is fits


def test_the_seat_kinds() -> None:
    assert rules.SEAT_KINDS == ("machine", "user")
    assert rules.DEFAULT_MACHINES_PER_USER == 3

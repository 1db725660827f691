"""Usage metering: consuming units (limits, all or nothing, giving back, idempotency, refusals),
the usage token checked by the standalone verifier, periods rolling over on an injected clock,
and the admin API's history and reset."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import factories
import pytest
from licentia_verifier import Verifier, WrongTokenType
from support import assert_problem, bearer, make_api_key, run

from keys.crypto import parse_kek
from server.cli_support import admin_session
from server.db.hot_pool import create_hot_pool
from server.db.session import create_side_engine
from server.license_rules import usage_allowed, usage_period, used_after
from server.metering import service
from server.metering.schemas import UsageRequest
from server.product_licensing.service import Caller
from server.signing_keys.keyring import Keyring

API = "/api/v1/licenses"
METERS = {
    "automations": {"limit": 3, "period": "month"},
    "installs": {"limit": 2, "period": None},
}


def consume(client, lic, meter: str = "automations", key: str | None = None, **extra: Any):
    body = {"license_key": lic.key, "product": lic.product, "meter": meter, **extra}
    headers = {"Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"{API}/usage", json=body, headers=headers)


def verifier(client, settings) -> Verifier:
    jwks = client.get("/.well-known/jwks.json").json()
    return Verifier.from_jwks(jwks, product="local_cli", issuer=settings.issuer)


@pytest.fixture
def metered(make_license):
    def make(**terms: Any):
        return make_license(tier="metered", meters=METERS, **terms)

    return make


# --- consuming ------------------------------------------------------------------------------


def test_consume_up_to_the_limit_then_refuse_without_consuming(client, metered, sql) -> None:
    lic = metered()
    answers = [consume(client, lic).json() for _ in range(3)]
    assert [(a["used"], a["remaining"]) for a in answers] == [(1, 2), (2, 1), (3, 0)]
    assert {a["limit"] for a in answers} == {3}
    over = assert_problem(consume(client, lic), 409, "USAGE_LIMIT")
    assert (over["used"], over["limit"], over["remaining"]) == (3, 3, 0)
    assert sql.one("SELECT used FROM license_usage WHERE license_id = %s", lic.id) == 3


def test_all_or_nothing_and_giving_back_never_below_zero(client, metered) -> None:
    lic = metered()
    assert consume(client, lic, amount=2).json()["used"] == 2
    assert_problem(consume(client, lic, amount=2), 409, "USAGE_LIMIT")
    assert consume(client, lic, amount=0).json()["used"] == 2  # a read
    assert consume(client, lic, amount=-1).json()["used"] == 1
    assert consume(client, lic, amount=-5).json()["used"] == 0
    assert consume(client, lic, amount=3).json()["remaining"] == 0
    assert_problem(consume(client, lic, amount=4), 409, "USAGE_LIMIT")


def test_a_new_counter_refuses_more_than_the_limit_at_once(client, metered, sql) -> None:
    lic = metered()
    assert_problem(consume(client, lic, amount=4), 409, "USAGE_LIMIT")
    assert sql.one("SELECT count(*) FROM license_usage WHERE license_id = %s", lic.id) == 0


def test_the_license_overrides_the_limit_and_features_show_it(client, metered) -> None:
    lic = metered(features={"automations": 5})
    assert consume(client, lic, amount=5).json()["limit"] == 5
    summary = client.post(
        f"{API}/validate", json={"license_key": lic.key, "product": lic.product}
    ).json()["license"]
    assert summary["features"]["automations"] == 5 and summary["features"]["installs"] == 2


def test_same_idempotency_key_replays_the_first_answer(client, metered, sql) -> None:
    lic = metered()
    first = consume(client, lic, key="k-1")
    again = consume(client, lic, key="k-1")
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert sql.one("SELECT used FROM license_usage WHERE license_id = %s", lic.id) == 1
    assert_problem(consume(client, lic, key="k-1", amount=2), 422, "IDEMPOTENCY_KEY_REUSED")
    assert consume(client, lic, key="k-2").json()["used"] == 2


def test_the_idempotency_key_is_required(client, metered) -> None:
    lic = metered()
    body = {"license_key": lic.key, "product": lic.product, "meter": "automations"}
    assert_problem(client.post(f"{API}/usage", json=body), 422, "IDEMPOTENCY_KEY_REQUIRED")


def test_a_refused_consumption_can_be_retried_with_its_key(client, metered) -> None:
    lic = metered()
    consume(client, lic, amount=3)
    assert_problem(consume(client, lic, key="later"), 409, "USAGE_LIMIT")
    consume(client, lic, amount=-1)
    assert consume(client, lic, key="later").json()["used"] == 3


@pytest.mark.parametrize(
    ("terms", "status", "code"),
    [
        ({"status": "suspended"}, 403, "LICENSE_SUSPENDED"),
        ({"status": "revoked"}, 403, "LICENSE_REVOKED"),
        ({"expires_at": datetime(2020, 1, 1, tzinfo=UTC)}, 403, "LICENSE_EXPIRED"),
    ],
)
def test_refused_like_activation(client, metered, terms, status, code) -> None:
    assert_problem(consume(client, metered(**terms)), status, code)


def test_unknown_key_product_meter_and_machine(client, metered) -> None:
    lic = metered()
    unknown = factories.License("NOPE-NOPE", uuid.uuid4(), uuid.uuid4(), "local_cli", "metered")
    assert_problem(consume(client, unknown), 404, "LICENSE_NOT_FOUND")
    other = factories.License(lic.key, lic.id, lic.organization_id, "other", "metered")
    assert_problem(consume(client, other), 422, "PRODUCT_MISMATCH")
    assert_problem(consume(client, lic, meter="nope"), 404, "METER_NOT_FOUND")
    assert_problem(consume(client, lic, fingerprint="no-seat"), 404, "NOT_ACTIVATED")
    activated = client.post(
        f"{API}/activate",
        json={"license_key": lic.key, "product": lic.product, "fingerprint": "m-1"},
    )
    assert activated.status_code == 201
    assert consume(client, lic, fingerprint="m-1").json()["used"] == 1


@pytest.mark.parametrize(
    "extra",
    [{"amount": "1"}, {"amount": 1.5}, {"amount": 2**60}, {"meter": ""}, {"other": 1}],
)
def test_bad_input_is_a_problem(client, metered, extra) -> None:
    assert_problem(consume(client, metered(), **extra), 422, "VALIDATION_ERROR")


def test_a_meter_limit_that_is_not_a_number_is_refused(client, metered) -> None:
    lic = metered(features={"automations": True})
    assert_problem(consume(client, lic), 409, "METER_MISCONFIGURED")


# --- the usage token --------------------------------------------------------------------------


def test_the_usage_token_is_verified_by_the_standalone_verifier(client, settings, metered) -> None:
    lic = metered()
    answer = consume(client, lic, amount=2).json()
    usage = verifier(client, settings).verify_usage(answer["token"])
    assert (usage.meter, usage.used, usage.limit, usage.remaining) == ("automations", 2, 3, 1)
    assert usage.period_ends_at == datetime.fromisoformat(answer["period_ends_at"])
    assert usage.license.license_id == str(lic.id)
    assert usage.license.features["automations"] == 3
    assert answer["key_certificate"] and "root_endorsements" in answer
    with pytest.raises(WrongTokenType):
        verifier(client, settings).verify_license(answer["token"])
    lifetime = consume(client, lic, meter="installs").json()
    assert lifetime["period_ends_at"] is None
    assert verifier(client, settings).verify_usage(lifetime["token"]).period_ends_at is None


# --- periods, on an injected clock ------------------------------------------------------------


def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_usage_periods() -> None:
    assert usage_period("day", _at(2027, 3, 5, 13, 7)) == (_at(2027, 3, 5), _at(2027, 3, 6))
    assert usage_period("month", _at(2027, 12, 31, 23, 59, 59)) == (
        _at(2027, 12, 1),
        _at(2028, 1, 1),
    )
    assert usage_period("month", _at(2027, 2, 1)) == (_at(2027, 2, 1), _at(2027, 3, 1))
    assert usage_period(None, _at(2027, 2, 1)) == (None, None)


@pytest.mark.parametrize(
    ("used", "amount", "limit", "allowed", "after"),
    [
        (0, 1, 1, True, 1),
        (1, 1, 1, False, 2),
        (0, 2, 1, False, 2),
        (3, -5, 3, True, 0),
        (2, 0, 3, True, 2),
        (0, 0, 0, True, 0),
        (2, -1, 3, True, 1),
    ],
)
def test_the_usage_rule_in_python_and_in_the_consume_statement(
    client, metered, sql, used, amount, limit, allowed, after
) -> None:
    """One table through ``license_rules`` and through ``licentia_consume`` (migration 0008)."""
    assert usage_allowed(used, amount, limit) is allowed
    assert used_after(used, amount) == after
    lic = metered(features={"automations": max(limit, used)})
    if used:
        assert consume(client, lic, amount=used).status_code == 200
    override = json.dumps({"automations": limit})  # the limit as the vendor lowered it
    sql.all("UPDATE licenses SET features = %s::jsonb WHERE id = %s", override, lic.id)
    answer = consume(client, lic, amount=amount)
    assert (answer.status_code == 200) is allowed, answer.text
    if allowed:
        assert answer.json()["used"] == after


def _consume_at(settings, lic, moments: list[tuple[datetime, str, int]]) -> list[Any]:
    """Consume through the service at the given moments (the clock is injected)."""
    kek = parse_kek(settings.key_encryption_key or "")

    async def work() -> list[Any]:
        pool = await create_hot_pool(settings)
        side = create_side_engine(settings)
        caller = Caller(settings=settings, keyring=Keyring(side, kek))
        answers = []
        try:
            for now, meter, amount in moments:
                data = UsageRequest(lic.key, lic.product, meter, amount)
                try:
                    consumed = await service.consume(
                        pool, caller, kek, data, uuid.uuid4().hex, now=now
                    )
                    answers.append(consumed.response.used)
                except Exception as exc:  # the refusal's code
                    answers.append(getattr(exc, "code", exc))
        finally:
            await pool.close()
            await side.dispose()
        return answers

    return run(work())


def _usage_at(settings, license_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    async def work() -> Any:
        async with admin_session(settings) as session:
            return await service.license_usage(session, None, license_id, now=now)

    return {m.meter: m for m in run(work()).meters}


def test_periods_roll_over_by_themselves_and_keep_history(settings, signing_key, metered) -> None:
    lic = metered()
    late_january = _at(2027, 1, 31, 23, 59, 59)
    february = _at(2027, 2, 1)
    moments = [
        (late_january, "automations", 3),
        (late_january, "automations", 1),  # over: USAGE_LIMIT
        (late_january, "installs", 2),
        (february, "automations", 1),  # a new month, from zero
        (february, "installs", 1),  # never resets: USAGE_LIMIT
        (_at(2027, 3, 15), "automations", 2),
    ]
    assert _consume_at(settings, lic, moments) == [3, "USAGE_LIMIT", 2, 1, "USAGE_LIMIT", 2]
    usage = _usage_at(settings, lic.id, _at(2027, 3, 20))
    automations = usage["automations"]
    assert (automations.used, automations.limit, automations.remaining) == (2, 3, 1)
    assert (automations.period_start, automations.period_ends_at) == (
        _at(2027, 3, 1),
        _at(2027, 4, 1),
    )
    assert [(h.period_start, h.used) for h in automations.history] == [
        (_at(2027, 2, 1), 1),
        (_at(2027, 1, 1), 3),
    ]
    installs = usage["installs"]
    assert (installs.period, installs.used, installs.history) == (None, 2, [])


def test_a_day_meter_starts_again_each_utc_day(settings, signing_key, make_license) -> None:
    lic = make_license(tier="daily", meters={"runs": {"limit": 1, "period": "day"}})
    day = _at(2027, 6, 1, 12)
    moments = [
        (day, "runs", 1),
        (day + timedelta(hours=11, minutes=59, seconds=59), "runs", 1),
        (day + timedelta(hours=12), "runs", 1),
    ]
    assert _consume_at(settings, lic, moments) == [1, "USAGE_LIMIT", 1]


# --- the admin API --------------------------------------------------------------------------


def test_admin_reads_and_resets_usage_audited(client, settings, admin_key, metered, sql) -> None:
    lic = metered()
    consume(client, lic, amount=3)
    consume(client, lic, meter="installs")
    admin = bearer(admin_key)
    read = client.get(f"{API}/{lic.id}/usage", headers=admin)
    assert read.status_code == 200, read.text
    meters = {m["meter"]: m for m in read.json()["meters"]}
    assert meters["automations"]["used"] == 3 and meters["automations"]["period"] == "month"
    assert meters["installs"]["used"] == 1 and meters["installs"]["period_ends_at"] is None

    reset = client.post(f"{API}/{lic.id}/usage/reset", json={"meter": "automations"}, headers=admin)
    assert reset.status_code == 200, reset.text
    after = {m["meter"]: m["used"] for m in reset.json()["meters"]}
    assert after == {"automations": 0, "installs": 1}
    assert consume(client, lic).json()["used"] == 1
    data = sql.one(
        "SELECT data FROM audit_events WHERE action = 'license.usage_reset' AND target_id = %s",
        str(lic.id),
    )
    assert data == {"meters": {"automations": 3}}

    everything = client.post(f"{API}/{lic.id}/usage/reset", json={}, headers=admin)
    assert {m["meter"]: m["used"] for m in everything.json()["meters"]} == {
        "automations": 0,
        "installs": 0,
    }
    assert_problem(
        client.post(f"{API}/{lic.id}/usage/reset", json={"meter": "nope"}, headers=admin),
        404,
        "METER_NOT_FOUND",
    )
    assert_problem(client.get(f"{API}/{uuid.uuid4()}/usage", headers=admin), 404)


def test_customers_read_their_own_usage_and_cannot_reset(
    client, settings, owner_db, metered
) -> None:
    lic = metered()
    consume(client, lic)
    user = factories.user(owner_db, lic.organization_id, "owner")
    mine = factories.access_headers(settings, user, lic.organization_id, "owner")
    assert client.get(f"{API}/{lic.id}/usage", headers=mine).status_code == 200
    assert_problem(client.post(f"{API}/{lic.id}/usage/reset", json={}, headers=mine), 403)
    other_org = factories.organization(owner_db, "Other")
    stranger = factories.user(owner_db, other_org, "owner")
    theirs = factories.access_headers(settings, stranger, other_org, "owner")
    assert_problem(client.get(f"{API}/{lic.id}/usage", headers=theirs), 404)
    reader = bearer(make_api_key(settings, ["licenses:read"]))
    assert_problem(client.post(f"{API}/{lic.id}/usage/reset", json={}, headers=reader), 403)


# --- tiers declare meters -------------------------------------------------------------------


def test_a_tier_declares_meters_and_their_limits_are_features(client, admin_key) -> None:
    admin = bearer(admin_key)
    product = client.post("/api/v1/products", json={"code": "flow", "name": "Flow"}, headers=admin)
    assert product.status_code == 201, product.text
    tier = {
        "code": "team",
        "name": "Team",
        "max_activations": 3,
        "features": {"sso": True},
        "meters": {"automations": {"limit": 100, "period": "month"}, "installs": {"limit": 50}},
    }
    made = client.post("/api/v1/products/flow/tiers", json=tier, headers=admin)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["features"] == {"sso": True, "automations": 100, "installs": 50}
    assert body["meters"] == {
        "automations": {"limit": 100, "period": "month"},
        "installs": {"limit": 50, "period": None},
    }
    url = "/api/v1/products/flow/tiers/team"
    changed = client.patch(url, json={"features": {"sso": False}}, headers=admin).json()
    assert changed["features"] == {"sso": False, "automations": 100, "installs": 50}
    changed = client.patch(url, json={"features": {"automations": 200}}, headers=admin).json()
    assert changed["meters"]["automations"]["limit"] == 200
    changed = client.patch(
        url, json={"meters": {"runs": {"limit": 5, "period": "day"}}}, headers=admin
    ).json()
    assert changed["features"] == {"runs": 5}
    assert changed["meters"] == {"runs": {"limit": 5, "period": "day"}}
    conflict = dict(tier, code="other", features={"automations": 7})
    assert_problem(
        client.post("/api/v1/products/flow/tiers", json=conflict, headers=admin),
        422,
        "METER_FEATURE_CONFLICT",
    )
    assert_problem(
        client.patch(url, json={"features": {"runs": "many"}}, headers=admin),
        422,
        "METER_FEATURE_CONFLICT",
    )
    bad = dict(tier, code="bad", meters={"x": {"limit": -1}})
    assert client.post("/api/v1/products/flow/tiers", json=bad, headers=admin).status_code in (
        400,
        422,
    )

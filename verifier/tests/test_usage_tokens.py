"""``usage+jwt`` (the answer to ``LicenseClient.consume``): verified like the other tokens,
with its own claims, and never mistaken for another type."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from licentia_verifier import Expired, MalformedToken, Usage, WrongTokenType


def usage_claims(env, **overrides):
    claims = env.license_claims(
        meter="automations", used=7, limit=10, period_end=env.NOW + 1800, exp=env.NOW + 1800
    )
    claims.update(overrides)
    return claims


def usage_token(env, **overrides) -> str:
    return env.sign(env.header("usage+jwt"), usage_claims(env, **overrides))


def test_a_usage_token_round_trips(env):
    usage = env.verifier().verify_usage(usage_token(env), now=env.NOW)
    assert isinstance(usage, Usage)
    assert (usage.meter, usage.used, usage.limit, usage.remaining) == ("automations", 7, 10, 3)
    assert usage.period_ends_at == datetime.fromtimestamp(env.NOW + 1800, timezone.utc)
    assert usage.license.license_id == env.LICENSE_ID and usage.license.tier == "pro"


def test_a_meter_that_never_resets_and_a_count_over_a_lowered_limit(env):
    usage = env.verifier().verify_usage(usage_token(env, period_end=None, used=12), now=env.NOW)
    assert usage.period_ends_at is None and usage.remaining == 0


def test_type_confusion_is_refused_every_way(env):
    verifier = env.verifier()
    token = usage_token(env)
    with pytest.raises(WrongTokenType):
        verifier.verify_license(token, now=env.NOW)
    with pytest.raises(WrongTokenType):
        verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    with pytest.raises(WrongTokenType):
        verifier.verify_usage(env.license(), now=env.NOW)


@pytest.mark.parametrize(
    "overrides",
    [
        {"used": -1},
        {"limit": -1},
        {"used": True},
        {"used": 1.0},
        {"meter": 3},
        {"period_end": "soon"},
        {"limit": None},
    ],
)
def test_broken_usage_claims_are_malformed(env, overrides):
    with pytest.raises(MalformedToken):
        env.verifier().verify_usage(usage_token(env, **overrides), now=env.NOW)


@pytest.mark.parametrize("claim", ["meter", "used", "limit", "period_end"])
def test_every_usage_claim_is_required(env, claim):
    claims = usage_claims(env)
    del claims[claim]
    with pytest.raises(MalformedToken, match=claim):
        env.verifier().verify_usage(env.sign(env.header("usage+jwt"), claims), now=env.NOW)


def test_a_usage_token_expires_with_its_period(env):
    with pytest.raises(Expired):
        env.verifier().verify_usage(usage_token(env), now=env.NOW + 1800 + 3600)

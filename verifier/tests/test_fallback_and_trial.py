"""Perpetual fallback (``updates_until``) and trials (``trial``), with the verifier alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from licentia_verifier import Expired, License, LicenseError

UTC = timezone.utc


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_a_fallback_token_covers_builds_released_until_updates_until(env):
    """Across the expiry instant: the license's updates end at ``until``; the token itself
    (``license_expires_at`` null) keeps verifying after it, for builds released before."""
    until = env.NOW - 10
    token = env.activation(license_expires_at=None, updates_until=until)
    verifier = env.verifier()
    lic = verifier.verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    assert lic.updates_until == _utc(until) and lic.license_expires_at is None
    assert lic.allows_release(until - 1)
    assert lic.allows_release(until)
    assert not lic.allows_release(until + 1)
    assert lic.allows_release(_utc(until)) and not lic.allows_release(_utc(until + 1))
    for released in (until - 86400, until, _utc(until)):
        kwargs = {"fingerprint": env.FINGERPRINT, "now": env.NOW, "released_at": released}
        assert verifier.verify_activation(token, **kwargs) == lic
    with pytest.raises(Expired, match="released after"):
        verifier.verify_activation(
            token, fingerprint=env.FINGERPRINT, now=env.NOW, released_at=until + 1
        )
    with pytest.raises(Expired):
        verifier.verify_license(
            env.license(license_expires_at=None, updates_until=until),
            now=env.NOW,
            released_at=_utc(until) + timedelta(seconds=1),
        )


def test_before_the_expiry_the_same_rule_holds(env):
    """A token issued before ``updates_until`` already carries it: a newer build is refused
    even while the updates are still running (it was released after them)."""
    until = env.NOW + 86400
    token = env.activation(license_expires_at=None, updates_until=until)
    verifier = env.verifier()
    lic = verifier.verify_activation(
        token, fingerprint=env.FINGERPRINT, now=env.NOW, released_at=env.NOW
    )
    assert lic.allows_release(until) and not lic.allows_release(until + 1)


def test_without_updates_until_every_build_is_covered(env):
    lic = env.verifier().verify_license(env.license(), now=env.NOW)
    assert lic.updates_until is None and lic.is_trial is False
    assert lic.allows_release(0) and lic.allows_release(253402300799)
    assert env.verifier().verify_license(env.license(), now=env.NOW, released_at=10**11)


def test_a_bad_release_date_is_a_license_error(env):
    lic = env.verifier().verify_license(env.license(updates_until=env.NOW), now=env.NOW)
    for bad in (datetime(2026, 1, 1), -1, float("nan"), "2026-01-01"):
        with pytest.raises(LicenseError):
            lic.allows_release(bad)  # type: ignore[arg-type]


def test_trial_tokens_say_so(env):
    lic = env.verifier().verify_activation(
        env.activation(trial=True), fingerprint=env.FINGERPRINT, now=env.NOW
    )
    assert lic.is_trial is True


def test_hand_built_licenses_carry_both(env):
    lic = License(
        license_id="5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",
        organization_id="00000000-0000-0000-0000-000000000000",
        product="p",
        tier="trial",
        features={},
        max_activations=1,
        issued_at=_utc(env.NOW),
        expires_at=_utc(env.NOW + 60),
        license_expires_at=None,
        updates_until=_utc(env.NOW),
        is_trial=True,
    )
    assert lic.is_trial and lic.updates_until == _utc(env.NOW)
    assert lic.allows_release(env.NOW) and not lic.allows_release(env.NOW + 1)

"""Named-user licenses: an activation token's optional ``usr`` claim is ``License.user_id``."""

from __future__ import annotations

import uuid

import pytest

from licentia_verifier import License, MalformedToken

USER = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"


def _compact(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.UUID(text).bytes).rstrip(b"=").decode("ascii")


def test_an_activation_token_names_its_user(env):
    claims = env.activation_claims(usr=_compact(USER))
    token = env.sign(env.header("activation+jwt"), claims)
    lic = env.verifier().verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    assert lic.user_id == USER


def test_a_machine_activation_has_no_user(env):
    token = env.sign(env.header("activation+jwt"), env.activation_claims())
    lic = env.verifier().verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)
    assert lic.user_id is None


def test_a_license_token_never_reports_a_user(env):
    """``usr`` is an activation-token claim: in a license token it is not the license's."""
    token = env.sign(env.header("license+jwt"), env.license_claims(usr=_compact(USER)))
    assert env.verifier().verify_license(token, now=env.NOW).user_id is None


def test_a_malformed_user_is_refused(env):
    token = env.sign(env.header("activation+jwt"), env.activation_claims(usr=USER))
    with pytest.raises(MalformedToken, match="usr"):
        env.verifier().verify_activation(token, fingerprint=env.FINGERPRINT, now=env.NOW)


def test_a_license_built_by_hand_keeps_its_user():
    from datetime import datetime, timezone

    now = datetime(2026, 5, 1, tzinfo=timezone.utc)
    lic = License(
        license_id=str(uuid.uuid4()),
        organization_id=str(uuid.uuid4()),
        product="p",
        tier="t",
        features={},
        max_activations=1,
        issued_at=now,
        expires_at=now,
        license_expires_at=None,
        activation_id=str(uuid.uuid4()),
        user_id=USER,
    )
    assert lic.user_id == USER

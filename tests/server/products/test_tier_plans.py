"""Tier settings for trials and perpetual fallback: is_trial, self_serve_trials,
expiry_behavior."""

from __future__ import annotations

import pytest
from support import assert_problem, bearer

TIERS = "/api/v1/products/local_cli/tiers"


@pytest.fixture
def auth(admin_key):
    return bearer(admin_key)


@pytest.fixture
def product(client, auth):
    response = client.post(
        "/api/v1/products", json={"code": "local_cli", "name": "Local CLI"}, headers=auth
    )
    assert response.status_code == 201, response.text


def test_defaults_and_settings(client, auth, product) -> None:
    plain = client.post(
        TIERS, json={"code": "pro", "name": "Pro", "max_activations": 3}, headers=auth
    ).json()
    assert (plain["is_trial"], plain["self_serve_trials"], plain["expiry_behavior"]) == (
        False,
        False,
        "restrict",
    )
    trial = client.post(
        TIERS,
        json={
            "code": "trial",
            "name": "Trial",
            "max_activations": 1,
            "duration_days": 14,
            "is_trial": True,
            "self_serve_trials": True,
        },
        headers=auth,
    )
    assert trial.status_code == 201, trial.text
    assert trial.json()["self_serve_trials"] is True
    fallback = client.patch(f"{TIERS}/pro", json={"expiry_behavior": "fallback"}, headers=auth)
    assert fallback.json()["expiry_behavior"] == "fallback"
    assert_problem(
        client.patch(f"{TIERS}/pro", json={"expiry_behavior": "forever"}, headers=auth),
        422,
        "VALIDATION_ERROR",
    )


def test_self_serve_trials_need_a_trial_tier_with_a_duration(client, auth, product) -> None:
    for body in (
        {"is_trial": False, "duration_days": 14},
        {"is_trial": True},
    ):
        refused = client.post(
            TIERS,
            json={
                "code": "t",
                "name": "T",
                "max_activations": 1,
                "self_serve_trials": True,
                **body,
            },
            headers=auth,
        )
        assert_problem(refused, 422, "TRIAL_TIER_INCOMPLETE")
    client.post(
        TIERS,
        json={"code": "t", "name": "T", "max_activations": 1, "is_trial": True},
        headers=auth,
    )
    assert_problem(
        client.patch(f"{TIERS}/t", json={"self_serve_trials": True}, headers=auth),
        422,
        "TRIAL_TIER_INCOMPLETE",
    )


def test_one_self_serve_trial_tier_per_product(client, auth, product) -> None:
    trial = {"max_activations": 1, "duration_days": 14, "is_trial": True}
    first = client.post(
        TIERS,
        json={"code": "t1", "name": "T1", "self_serve_trials": True, **trial},
        headers=auth,
    )
    assert first.status_code == 201
    second = client.post(
        TIERS,
        json={"code": "t2", "name": "T2", "self_serve_trials": True, **trial},
        headers=auth,
    )
    assert_problem(second, 409, "SELF_SERVE_TRIAL_TIER_EXISTS")
    client.post(TIERS, json={"code": "t2", "name": "T2", **trial}, headers=auth)
    assert_problem(
        client.patch(f"{TIERS}/t2", json={"self_serve_trials": True}, headers=auth),
        409,
        "SELF_SERVE_TRIAL_TIER_EXISTS",
    )
    assert client.patch(f"{TIERS}/t1", json={"self_serve_trials": True}, headers=auth).is_success
    assert client.patch(f"{TIERS}/t1", json={"self_serve_trials": False}, headers=auth).is_success
    moved = client.patch(f"{TIERS}/t2", json={"self_serve_trials": True}, headers=auth)
    assert moved.status_code == 200 and moved.json()["self_serve_trials"] is True

"""Customers for tests: sign up, add members, check problem answers (through the real API)."""

from __future__ import annotations

import uuid

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient
from support import bearer

from server.auth import service as auth_service

API = "/api/v1"
PASSWORD = "correct horse battery"


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cheapest argon2id parameters: the tests exercise the flows, not the hash."""
    monkeypatch.setattr(
        auth_service, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


def signup(client: TestClient, org: str = "Acme", email: str | None = None) -> dict:
    response = client.post(
        f"{API}/auth/signup",
        json={
            "email": email or f"{uuid.uuid4().hex[:10]}@example.com",
            "password": PASSWORD,
            "full_name": "Owner",
            "organization_name": org,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = bearer(body["access_token"])
    return body


def add_user(client: TestClient, headers: dict, role: str = "member") -> dict:
    """Add a user with the given role and log them in; returns the user and its headers."""
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    response = client.post(
        f"{API}/users",
        headers=headers,
        json={"email": email, "full_name": role.title(), "role": role, "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    token = client.post(f"{API}/auth/login", json={"email": email, "password": PASSWORD})
    assert token.status_code == 200, token.text
    return {**response.json(), "headers": bearer(token.json()["access_token"])}

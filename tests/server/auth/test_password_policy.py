"""One password rule (server/passwords.py) for every path that sets a password: sign-up, user
creation (by an owner or an admin key), and a password change. Weak ones are a 422
WEAK_PASSWORD saying why, and nothing is created or changed."""

from __future__ import annotations

import uuid

import pytest
from factories import API, PASSWORD, add_user, signup
from litestar.testing import TestClient
from support import assert_problem, bearer

from server import passwords
from server.errors import InvalidInput
from server.passwords import MIN_DISTINCT, check_password_policy, common_passwords

pytestmark = pytest.mark.usefixtures("cheap_argon2")

WEAK = {
    "common": "password1234",
    "common, in another case": "PassWord1234",
    "common, with spaces around": "  qwertyqwerty ",
    "common and long": "1q2w3e4r5t6y7u8i9o0p",
    "few distinct characters": "abababababababab",
    "one character": "zzzzzzzzzzzz",
    "blank": " " * 12,
}
STRONG = "a brand new passphrase"


@pytest.mark.parametrize("password", list(WEAK.values()), ids=list(WEAK))
def test_weak_passwords_are_refused_with_a_reason(password: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_password_policy(password)
    assert caught.value.code == "WEAK_PASSWORD"
    assert caught.value.detail.startswith("password: ")


@pytest.mark.parametrize(
    "password", [STRONG, PASSWORD, "Tr0ub4dor&3x!", "abcde" * 3, "Ωμέγα-παράδειγμα"]
)
def test_reasonable_passwords_pass(password: str) -> None:
    check_password_policy(password)


def test_the_list_ships_with_the_package_and_is_read_once() -> None:
    common_passwords.cache_clear()
    listed = common_passwords()
    assert 1000 <= len(listed) <= 2000
    assert {"123456", "password", "qwertyuiop", "password1234", "iloveyou"} <= listed
    assert all(entry == entry.casefold() and entry.strip() == entry for entry in listed)
    assert not any(entry.startswith("#") for entry in listed)
    common_passwords()
    assert common_passwords.cache_info().misses == 1
    assert len(set("abcd" * 3)) < MIN_DISTINCT <= len(set("abcde"))
    assert passwords.MIN_LENGTH == 12


@pytest.mark.parametrize("password", ["password1234", "aaaabbbbcccc"])
def test_signup_refuses_a_weak_password(client: TestClient, password: str) -> None:
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": password, "full_name": "X", "organization_name": "X"}
    assert_problem(client.post(f"{API}/auth/signup", json=body), 422, "WEAK_PASSWORD")
    login = client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert login.status_code == 401  # nobody was created


@pytest.mark.parametrize("password", ["Password1234", "aaaabbbbcccc"])
def test_user_creation_refuses_a_weak_password(
    client: TestClient, admin_key: str, password: str
) -> None:
    owner = signup(client)
    email = f"{uuid.uuid4().hex[:10]}@example.com"
    member = {"email": email, "full_name": "M", "password": password}
    by_owner = client.post(f"{API}/users", json=member, headers=owner["headers"])
    assert_problem(by_owner, 422, "WEAK_PASSWORD")
    by_admin = client.post(
        f"{API}/users",
        json={**member, "organization_id": owner["organization"]["id"]},
        headers=bearer(admin_key),
    )
    assert_problem(by_admin, 422, "WEAK_PASSWORD")
    listed = client.get(f"{API}/users", headers=owner["headers"]).json()["items"]
    assert email not in {user["email"] for user in listed}


@pytest.mark.parametrize("password", ["qwertyuiop123", "xyxyxyxyxyxyxy"])
def test_a_password_change_refuses_a_weak_password(client: TestClient, password: str) -> None:
    owner = signup(client)
    member = add_user(client, owner["headers"])
    url = f"{API}/users/{member['id']}"
    change = {"password": password, "current_password": PASSWORD}
    assert_problem(client.patch(url, json=change, headers=member["headers"]), 422, "WEAK_PASSWORD")
    login = {"email": member["email"], "password": PASSWORD}
    assert client.post(f"{API}/auth/login", json=login).status_code == 200  # unchanged
    change["password"] = STRONG
    assert client.patch(url, json=change, headers=member["headers"]).status_code == 200

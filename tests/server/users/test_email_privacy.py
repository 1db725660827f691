"""Whether an e-mail address has an account in another organization never shows.

E-mail addresses are unique within an organization, not across them: an account belongs to
one organization, as in a workspace product. Adding a user (an owner or admin, or an API
key) and signing up consult only the organization concerned, so the answer for an address
known elsewhere is the answer for a new one. Login finds the account by e-mail; an address
with accounts in several organizations logs in to the oldest one unless the request names
``organization_id``.
"""

from __future__ import annotations

import pytest
from factories import API, PASSWORD, signup
from litestar.testing import TestClient
from support import assert_problem, bearer

pytestmark = pytest.mark.usefixtures("cheap_argon2")

SHAPE = {"id", "organization_id", "email", "full_name", "role", "created_at", "updated_at"}


def _add(client: TestClient, headers: dict, email: str, password: str = PASSWORD):
    return client.post(
        f"{API}/users",
        headers=headers,
        json={"email": email, "full_name": "Probe", "password": password},
    )


def test_adding_an_address_known_elsewhere_answers_like_a_new_one(client: TestClient) -> None:
    signup(client, "A", email="known@example.com")
    prober = signup(client, "B")
    known = _add(client, prober["headers"], " KNOWN@example.com")
    fresh = _add(client, prober["headers"], "never-seen@example.com")
    assert known.status_code == fresh.status_code == 201, (known.text, fresh.text)
    assert set(known.json()) == set(fresh.json()) and set(known.json()) >= SHAPE
    assert known.json()["organization_id"] == prober["organization"]["id"]
    # Within one organization an address is still unique: that is the organization's own data.
    assert_problem(_add(client, prober["headers"], "known@example.com"), 409, "EMAIL_TAKEN")


def test_signing_up_with_an_address_known_elsewhere_answers_like_a_new_one(
    client: TestClient,
) -> None:
    first = signup(client, "A", email="grace@example.com")
    second = signup(client, "B", email=" GRACE@example.com")  # asserts 201
    assert second["organization"]["id"] != first["organization"]["id"]
    assert second["user"]["email"] == "grace@example.com"
    me = client.get(f"{API}/auth/me", headers=second["headers"]).json()
    assert me["organization_id"] == second["organization"]["id"]


def test_login_picks_the_oldest_account_unless_an_organization_is_named(
    client: TestClient,
) -> None:
    first = signup(client, "A", email="dup@example.com")
    second = signup(client, "B")
    assert (
        _add(client, second["headers"], "dup@example.com", "another long passphrase").status_code
        == 201
    )

    def login(password: str, organization_id: str | None = None):
        body = {"email": "dup@example.com", "password": password}
        if organization_id:
            body["organization_id"] = organization_id
        return client.post(f"{API}/auth/login", json=body)

    def org_of(response) -> str:
        token = bearer(response.json()["access_token"])
        return client.get(f"{API}/auth/me", headers=token).json()["organization_id"]

    assert org_of(login(PASSWORD)) == first["organization"]["id"]
    # The newer account's password does not open the older one, nor tell it exists.
    assert_problem(login("another long passphrase"), 401, "INVALID_CREDENTIALS")
    b = second["organization"]["id"]
    assert org_of(login("another long passphrase", b)) == b
    assert_problem(login(PASSWORD, b), 401, "INVALID_CREDENTIALS")
    unrelated = signup(client, "C")["organization"]["id"]
    assert_problem(login(PASSWORD, unrelated), 401, "INVALID_CREDENTIALS")


def test_a_later_account_cannot_take_over_the_default_login(client: TestClient) -> None:
    """Someone adding a victim's address to their own organization, with a password they
    chose, gets an account there only: the victim's login is unchanged."""
    victim = signup(client, "Victim", email="victim@example.com")
    attacker = signup(client, "Attacker")
    assert (
        _add(client, attacker["headers"], "victim@example.com", "attacker chose this").status_code
        == 201
    )
    own = client.post(
        f"{API}/auth/login", json={"email": "victim@example.com", "password": PASSWORD}
    )
    me = client.get(f"{API}/auth/me", headers=bearer(own.json()["access_token"])).json()
    assert me["organization_id"] == victim["organization"]["id"]
    hijack = client.post(
        f"{API}/auth/login",
        json={"email": "victim@example.com", "password": "attacker chose this"},
    )
    assert_problem(hijack, 401, "INVALID_CREDENTIALS")

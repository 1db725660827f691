"""Named-user seats over HTTP: assigning members to a license of a ``user`` tier, activating
with the user's access token, and freeing their seats (unassigning, removing the user)."""

from __future__ import annotations

import uuid

import factories
from licentia_verifier import Verifier
from support import assert_problem, bearer

API = "/api/v1"
PRODUCT = "cloud_ide"  # tiers "team" (named users) and "desk" (machines): see conftest.py


def activate(team, fingerprint: str, headers: dict[str, str] | None = None, lic=None):
    lic = lic or team.license
    return team.client.post(
        f"{API}/licenses/activate",
        json={"license_key": lic.key, "product": PRODUCT, "fingerprint": fingerprint},
        headers=headers or {},
    )


def verifier(team, settings) -> Verifier:
    jwks = team.client.get("/.well-known/jwks.json").json()
    return Verifier.from_jwks(jwks, product=PRODUCT, issuer=settings.issuer)


def assign(team, user: dict, headers: dict[str, str] | None = None):
    return team.client.post(
        team.users_url, json={"user_id": user["id"]}, headers=headers or team.owner["headers"]
    )


# --- the tier setting -----------------------------------------------------------------------


def test_a_user_tier_needs_max_users_and_reads_back(client, admin_key, user_catalog) -> None:
    headers = bearer(admin_key)
    url = f"{API}/products/{PRODUCT}/tiers"
    missing = client.post(
        url,
        headers=headers,
        json={"code": "solo", "name": "Solo", "max_activations": 3, "seat_kind": "user"},
    )
    assert_problem(missing, 422, "MAX_USERS_REQUIRED")
    made = client.post(
        url,
        headers=headers,
        json={
            "code": "solo",
            "name": "Solo",
            "max_activations": 3,
            "seat_kind": "user",
            "max_users": 1,
        },
    )
    assert made.status_code == 201, made.text
    tier = made.json()
    assert (tier["seat_kind"], tier["max_users"], tier["machines_per_user"]) == ("user", 1, 3)
    assert_problem(
        client.post(
            url,
            headers=headers,
            json={"code": "x", "name": "X", "max_activations": 1, "seat_kind": "seat"},
        ),
        422,
        "VALIDATION_ERROR",
    )
    cleared = client.patch(f"{url}/solo", headers=headers, json={"max_users": None})
    assert_problem(cleared, 422, "MAX_USERS_REQUIRED")
    machine = client.get(f"{url}/desk", headers=headers).json()
    assert (machine["seat_kind"], machine["max_users"]) == ("machine", None)


# --- assigning ------------------------------------------------------------------------------


def test_owners_assign_up_to_max_users(make_team, sql) -> None:
    team = make_team()
    admin_member = team.member("admin")
    first, second, third = team.member(), team.member(), team.member()

    created = assign(team, first)
    assert created.status_code == 201, created.text
    assert created.json()["user_id"] == first["id"] and created.json()["machines"] == 0
    assert assign(team, first).status_code == 200  # already assigned: nothing changes
    assert assign(team, second, admin_member["headers"]).status_code == 201  # admins too
    full = assign(team, third)
    assert_problem(full, 409, "USER_LIMIT")
    assert_problem(assign(team, third, third["headers"]), 403, "INSUFFICIENT_ROLE")

    listed = team.client.get(team.users_url, headers=third["headers"])  # members read
    assert listed.status_code == 200
    body = listed.json()
    assert (body["seat_kind"], body["max_users"], body["machines_per_user"]) == (
        "user",
        team.max_users,
        team.machines_per_user,
    )
    assert [u["user_id"] for u in body["users"]] == [first["id"], second["id"]]

    gone = team.client.delete(f"{team.users_url}/{second['id']}", headers=team.owner["headers"])
    assert gone.status_code == 204
    assert assign(team, third).status_code == 201
    again = team.client.delete(f"{team.users_url}/{second['id']}", headers=team.owner["headers"])
    assert_problem(again, 404, "LICENSE_USER_NOT_FOUND")
    actions = sql.all(
        "SELECT action FROM audit_events WHERE target_id = %s AND action LIKE 'license.user%%' "
        "ORDER BY id",
        str(team.license.id),
    )
    assert [a for (a,) in actions] == [
        "license.user_assign",
        "license.user_assign",
        "license.user_unassign",
        "license.user_assign",
    ]


def test_an_admin_key_assigns(make_team) -> None:
    team = make_team()
    member = team.member()
    factories.license_user(team.admin, team.license, member["id"])
    listed = team.client.get(team.users_url, headers=team.admin.headers).json()
    assert [u["email"] for u in listed["users"]] == [member["email"]]


def test_another_organization_is_404(make_team) -> None:
    team, other = make_team(), make_team()
    stranger = other.member()
    assert_problem(assign(team, stranger), 404, "USER_NOT_FOUND")
    assert_problem(assign(team, {"id": str(uuid.uuid4())}), 404, "USER_NOT_FOUND")
    # the other organization's owner does not see this license at all
    assert_problem(team.client.get(team.users_url, headers=other.owner["headers"]), 404)
    assert_problem(assign(team, stranger, other.owner["headers"]), 404, "LICENSE_NOT_FOUND")
    removed = team.client.delete(
        f"{team.users_url}/{stranger['id']}", headers=other.owner["headers"]
    )
    assert_problem(removed, 404, "LICENSE_NOT_FOUND")


def test_a_machine_license_has_no_users(make_team) -> None:
    team = make_team("desk")
    assert_problem(assign(team, team.member()), 409, "NOT_A_USER_LICENSE")
    listed = team.client.get(team.users_url, headers=team.owner["headers"]).json()
    assert listed["seat_kind"] == "machine" and listed["users"] == []


def test_bad_input_is_a_problem(make_team) -> None:
    team = make_team()
    headers = team.owner["headers"]
    for body in ({}, {"user_id": "nope"}, {"user_id": 7}, {"user_id": str(uuid.uuid4()), "x": 1}):
        response = team.client.post(team.users_url, json=body, headers=headers)
        assert_problem(response, 422, "VALIDATION_ERROR")
    assert_problem(team.client.delete(f"{team.users_url}/nope", headers=headers), 404)
    assert_problem(team.client.post(team.users_url, json={"user_id": str(uuid.uuid4())}), 401)


# --- activating with the user's access token -------------------------------------------------


def test_activation_is_bound_to_an_assigned_user(make_team, settings, sql) -> None:
    team = make_team()
    alice, bob = team.member(), team.member()
    assert assign(team, alice).status_code == 201

    assert_problem(activate(team, "m-1"), 401, "USER_TOKEN_REQUIRED")
    assert_problem(
        activate(team, "m-1", {"Authorization": "Bearer nonsense"}), 401, "INVALID_TOKEN"
    )
    assert_problem(activate(team, "m-1", {"Authorization": "Basic eDp5"}), 401)
    assert_problem(activate(team, "m-1", bob["headers"]), 403, "USER_NOT_ASSIGNED")

    first = activate(team, "m-1", alice["headers"])
    assert first.status_code == 201, first.text
    lic = verifier(team, settings).verify_activation(first.json()["token"], fingerprint="m-1")
    assert lic.user_id == alice["id"]
    assert (
        sql.one(
            "SELECT user_id::text FROM activations WHERE id = %s", first.json()["activation_id"]
        )
        == alice["id"]
    )
    renewed = activate(team, "m-1", alice["headers"])
    assert renewed.status_code == 200
    assert renewed.json()["activation_id"] == first.json()["activation_id"]

    for n in range(2, team.machines_per_user + 1):
        assert activate(team, f"m-{n}", alice["headers"]).status_code == 201
    over = activate(team, "m-99", alice["headers"])
    assert_problem(over, 409, "USER_MACHINE_LIMIT")

    # another user cannot take over a machine's seat held for Alice
    assert assign(team, bob).status_code == 201
    assert_problem(activate(team, "m-1", bob["headers"]), 409, "SEAT_OF_ANOTHER_USER")
    assert activate(team, "b-1", bob["headers"]).status_code == 201

    checked = team.client.post(
        f"{API}/licenses/check-in",
        json={"license_key": team.license.key, "product": PRODUCT, "fingerprint": "m-1"},
    )
    assert checked.status_code == 200, checked.text
    again = verifier(team, settings).verify_activation(checked.json()["token"], fingerprint="m-1")
    assert again.user_id == alice["id"]

    listed = team.client.get(team.users_url, headers=team.owner["headers"]).json()
    assert {u["user_id"]: u["machines"] for u in listed["users"]} == {
        alice["id"]: team.machines_per_user,
        bob["id"]: 1,
    }
    machines = team.client.get(
        f"{API}/licenses/{team.license.id}/activations", headers=team.owner["headers"]
    ).json()["items"]
    assert {m["user_id"] for m in machines} == {alice["id"], bob["id"]}


def test_a_user_of_another_organization_cannot_activate(make_team) -> None:
    team, other = make_team(), make_team()
    assert_problem(activate(team, "m-1", other.owner["headers"]), 403, "USER_NOT_ASSIGNED")


def test_machine_licenses_ignore_the_header(make_team, settings) -> None:
    """A machine license neither needs nor checks a user token (nor binds one)."""
    team = make_team("desk")
    plain = activate(team, "m-1")
    assert plain.status_code == 201
    odd = activate(team, "m-2", {"Authorization": "Bearer nonsense"})
    assert odd.status_code == 201
    member = team.member()
    with_user = activate(team, "m-3", member["headers"])
    lic = verifier(team, settings).verify_activation(with_user.json()["token"], fingerprint="m-3")
    assert lic.user_id is None


# --- freeing seats --------------------------------------------------------------------------


def test_unassigning_deactivates_the_users_machines(make_team, sql) -> None:
    team = make_team()
    alice = team.member()
    assign(team, alice)
    assert activate(team, "m-1", alice["headers"]).status_code == 201
    assert activate(team, "m-2", alice["headers"]).status_code == 201

    gone = team.client.delete(f"{team.users_url}/{alice['id']}", headers=team.owner["headers"])
    assert gone.status_code == 204
    reasons = sql.all(
        "SELECT deactivation_reason FROM activations WHERE license_id = %s", team.license.id
    )
    assert sorted(r for (r,) in reasons) == ["user_unassigned", "user_unassigned"]
    assert sql.live(team.license.id) == 0
    checked = team.client.post(
        f"{API}/licenses/check-in",
        json={"license_key": team.license.key, "product": PRODUCT, "fingerprint": "m-1"},
    )
    assert_problem(checked, 404, "NOT_ACTIVATED")
    assert_problem(activate(team, "m-1", alice["headers"]), 403, "USER_NOT_ASSIGNED")
    freed = sql.one(
        "SELECT count(*) FROM audit_events WHERE action = 'activation.deactivate' "
        "AND data->>'reason' = 'user_unassigned'"
    )
    assert freed == 2


def test_removing_a_user_frees_their_seats(make_team, sql) -> None:
    team = make_team()
    alice, bob = team.member(), team.member()
    assign(team, alice)
    assign(team, bob)
    assert activate(team, "a-1", alice["headers"]).status_code == 201
    assert activate(team, "b-1", bob["headers"]).status_code == 201

    removed = team.client.delete(f"{API}/users/{alice['id']}", headers=team.owner["headers"])
    assert removed.status_code == 204, removed.text
    assert sql.one("SELECT count(*) FROM license_users WHERE user_id = %s", alice["id"]) == 0
    assert sql.all(
        "SELECT fingerprint_hash IS NOT NULL, deactivation_reason FROM activations "
        "WHERE license_id = %s AND deactivated_at IS NOT NULL",
        team.license.id,
    ) == [(True, "user_removed")]
    assert sql.live(team.license.id) == 1  # Bob's machine keeps its seat
    listed = team.client.get(team.users_url, headers=team.owner["headers"]).json()
    assert [u["user_id"] for u in listed["users"]] == [bob["id"]]
    # Alice's token no longer stands; her seat went to somebody else
    assert_problem(activate(team, "a-2", alice["headers"]), 401)
    assert assign(team, team.member()).status_code == 201

"""A license's own ``max_users``: it overrides the tier's on issue, PATCH and change of tier
(kept unless replaced, like ``max_activations``), ``USER_LIMIT`` counts against it, and it is
never set below the users assigned (409 ``USERS_ASSIGNED``)."""

from __future__ import annotations

from support import assert_problem

API = "/api/v1"
# conftest.py: tier "team" (named users, MAX_USERS = 2), tier "desk" (machines)


def assign(team, user: dict):
    return team.client.post(
        team.users_url, json={"user_id": user["id"]}, headers=team.owner["headers"]
    )


def read(team) -> dict:
    response = team.client.get(f"{API}/licenses/{team.license.id}", headers=team.admin.headers)
    assert response.status_code == 200, response.text
    return response.json()


def patch(team, **body):
    return team.client.patch(
        f"{API}/licenses/{team.license.id}", json=body, headers=team.admin.headers
    )


def change_tier(team, tier: str, **body):
    return team.client.post(
        f"{API}/licenses/{team.license.id}/change-tier",
        json={"tier": tier, **body},
        headers=team.admin.headers,
    )


def listed_max_users(team) -> int | None:
    return team.client.get(team.users_url, headers=team.admin.headers).json()["max_users"]


def test_an_override_above_the_tier_admits_more_users(make_team, sql) -> None:
    team = make_team(max_users=4)
    assert team.license.body["max_users"] == 4
    assert read(team)["max_users"] == 4 and listed_max_users(team) == 4
    members = [team.member() for _ in range(5)]
    assert [assign(team, m).status_code for m in members[:4]] == [201] * 4
    assert_problem(assign(team, members[4]), 409, "USER_LIMIT")
    assert sql.one("SELECT max_users FROM licenses WHERE id = %s", team.license.id) == 4


def test_an_override_below_the_tier_admits_fewer(make_team) -> None:
    team = make_team(max_users=1)
    assert read(team)["max_users"] == 1 and listed_max_users(team) == 1
    first, second = team.member(), team.member()
    assert assign(team, first).status_code == 201
    full = assert_problem(assign(team, second), 409, "USER_LIMIT")
    assert "All 1 user seat(s)" in full["detail"]
    none = make_team(max_users=0)
    assert_problem(assign(none, none.member()), 409, "USER_LIMIT")


def test_without_an_override_the_tier_decides(make_team) -> None:
    team = make_team()
    assert read(team)["max_users"] == team.max_users == 2
    desk = make_team("desk")
    assert read(desk)["max_users"] is None  # a machine tier has no named users
    assert listed_max_users(desk) is None


def test_patch_never_goes_below_the_users_assigned(make_team, sql) -> None:
    team = make_team()
    first, second, third = team.member(), team.member(), team.member()
    assert assign(team, first).status_code == assign(team, second).status_code == 201

    lowered = assert_problem(patch(team, max_users=1), 409, "USERS_ASSIGNED")
    assert (lowered["assigned"], lowered["max_users"], lowered["excess"]) == (2, 1, 1)
    assert read(team)["max_users"] == 2  # unchanged

    raised = patch(team, max_users=3)
    assert raised.status_code == 200, raised.text
    assert raised.json()["max_users"] == 3
    assert assign(team, third).status_code == 201
    assert patch(team, max_users=3).status_code == 200  # as many as assigned is fine
    # back to the tier's 2: three are assigned
    assert_problem(patch(team, max_users=None), 409, "USERS_ASSIGNED")
    gone = team.client.delete(f"{team.users_url}/{third['id']}", headers=team.owner["headers"])
    assert gone.status_code == 204
    cleared = patch(team, max_users=None)
    assert cleared.status_code == 200 and cleared.json()["max_users"] == 2
    assert sql.one("SELECT max_users FROM licenses WHERE id = %s", team.license.id) is None
    fields = sql.all(
        "SELECT data->'fields' FROM audit_events WHERE action = 'license.update' "
        "AND target_id = %s ORDER BY id",
        str(team.license.id),
    )
    assert fields == [(["max_users"],)] * 3  # the refused ones were not recorded


def test_a_machine_tier_takes_no_max_users(make_team, client, admin_key) -> None:
    desk = make_team("desk")
    assert_problem(patch(desk, max_users=3), 422, "MAX_USERS_NOT_APPLICABLE")
    cleared = patch(desk, max_users=None)  # clearing is always possible
    assert cleared.status_code == 200 and cleared.json()["max_users"] is None
    issued = client.post(
        f"{API}/licenses",
        json={
            "organization_id": str(desk.organization_id),
            "product": desk.product,
            "tier": "desk",
            "max_users": 3,
        },
        headers=desk.admin.headers,
    )
    assert_problem(issued, 422, "MAX_USERS_NOT_APPLICABLE")
    negative = client.post(
        f"{API}/licenses",
        json={
            "organization_id": str(desk.organization_id),
            "product": desk.product,
            "tier": "team",
            "max_users": -1,
        },
        headers=desk.admin.headers,
    )
    assert_problem(negative, 422)


def test_a_change_of_tier_keeps_the_override_unless_replaced(make_team, sql) -> None:
    team = make_team(max_users=4)
    to_desk = change_tier(team, "desk")
    assert to_desk.status_code == 200, to_desk.text
    assert to_desk.json()["max_users"] is None  # machines now; the override waits
    assert sql.one("SELECT max_users FROM licenses WHERE id = %s", team.license.id) == 4
    back = change_tier(team, "team")
    assert back.status_code == 200 and back.json()["max_users"] == 4
    replaced = change_tier(team, "team", max_users=5)
    assert replaced.status_code == 200 and replaced.json()["max_users"] == 5
    to_tier = change_tier(team, "team", max_users=None)
    assert to_tier.status_code == 200 and to_tier.json()["max_users"] == 2
    assert_problem(change_tier(team, "desk", max_users=3), 422, "MAX_USERS_NOT_APPLICABLE")


def test_a_change_of_tier_never_goes_below_the_users_assigned(make_team) -> None:
    team = make_team(max_users=3)
    for member in (team.member(), team.member(), team.member()):
        assert assign(team, member).status_code == 201
    refused = assert_problem(change_tier(team, "team", max_users=2), 409, "USERS_ASSIGNED")
    assert (refused["assigned"], refused["max_users"]) == (3, 2)
    # dropping the override would leave the tier's 2
    assert_problem(change_tier(team, "team", max_users=None), 409, "USERS_ASSIGNED")
    assert read(team)["max_users"] == 3
    # a machine tier has no users to count: allowed, and the assignments wait
    assert change_tier(team, "desk").status_code == 200
    assert change_tier(team, "team").status_code == 200
    assert read(team)["max_users"] == 3

"""`licentia licenses users list|assign|unassign`: the same service as
/api/v1/licenses/{id}/users, with USER an id or an e-mail of the license's organization."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def cli(licentia):
    return lambda *args: licentia("licenses", "users", *args)


def _refused(result, code: str) -> str:
    """A refusal: exit status 1 and one line on stderr naming the code."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and code in lines[0], result.stderr
    return lines[0]


def test_assign_list_unassign_by_email_or_id(cli, make_team, sql) -> None:
    team = make_team()  # 2 named users
    lic = str(team.license.id)
    alice, bob, carol = team.member(), team.member(), team.member()

    by_email = cli("assign", lic, alice["email"].upper())  # any case, as logging in takes it
    assert by_email.exit_code == 0, by_email.output
    assert f"{alice['email']} ({alice['id']}) assigned" in by_email.stdout
    by_id = cli("assign", lic, bob["id"])
    assert by_id.exit_code == 0 and "assigned" in by_id.stdout
    again = cli("assign", lic, bob["id"])
    assert again.exit_code == 0 and "already assigned" in again.stdout
    full = _refused(cli("assign", lic, carol["email"]), "USER_LIMIT")
    assert full.startswith("Error: USER_LIMIT: All 2 user seat(s)")

    listed = cli("list", lic)
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines] == [
        [alice["id"], alice["email"]],
        [bob["id"], bob["email"]],
    ]
    assert "machines 0" in lines[0]
    assert "2/2 users, 2 machine(s) each" in listed.stderr

    gone = cli("unassign", lic, alice["email"])
    assert gone.exit_code == 0, gone.output
    assert f"user {alice['id']} unassigned" in gone.stdout
    _refused(cli("unassign", lic, alice["id"]), "LICENSE_USER_NOT_FOUND")
    assert cli("assign", lic, carol["email"]).exit_code == 0  # the seat was free

    actors = sql.all(
        "SELECT action, actor_type FROM audit_events WHERE target_id = %s "
        "AND action LIKE 'license.user%%' ORDER BY id",
        lic,
    )
    assert actors == [
        ("license.user_assign", "cli"),
        ("license.user_assign", "cli"),
        ("license.user_unassign", "cli"),
        ("license.user_assign", "cli"),
    ]


def test_errors_are_one_line_and_exit_non_zero(cli, make_team) -> None:
    team, other = make_team(), make_team()
    lic = str(team.license.id)
    stranger = other.member()
    _refused(cli("assign", lic, stranger["email"]), "USER_NOT_FOUND")  # another organization
    _refused(cli("assign", lic, stranger["id"]), "USER_NOT_FOUND")
    _refused(cli("assign", lic, "nobody@example.test"), "USER_NOT_FOUND")
    _refused(cli("assign", lic, "not an address"), "INVALID_EMAIL")
    unknown = str(uuid.uuid4())
    _refused(cli("assign", unknown, stranger["email"]), "LICENSE_NOT_FOUND")
    _refused(cli("list", unknown), "LICENSE_NOT_FOUND")
    _refused(cli("unassign", unknown, stranger["id"]), "LICENSE_NOT_FOUND")
    desk = make_team("desk")
    _refused(cli("assign", str(desk.license.id), desk.member()["id"]), "NOT_A_USER_LICENSE")
    machines = cli("list", str(desk.license.id))
    assert machines.exit_code == 0 and machines.stdout == ""
    assert "counts machines, not named users" in machines.stderr
    assert cli("assign", "not-a-uuid", "x").exit_code == 2  # click's usage error


def test_issue_takes_max_users(licentia, make_team, sql) -> None:
    team = make_team()

    def issue(*extra: str):
        args = ["--org", str(team.organization_id), "--product", team.product, *extra]
        return licentia("licenses", "issue", *args)

    issued = issue("--tier", "team", "--max-users", "5")
    assert issued.exit_code == 0, issued.output
    key = issued.stdout.strip()
    row = sql.one("SELECT max_users FROM licenses WHERE key_prefix = %s", key[:8])
    assert row == 5
    refused = issue("--tier", "desk", "--max-users", "5")
    assert refused.exit_code == 1 and "MAX_USERS_NOT_APPLICABLE" in refused.stderr
    assert issue("--tier", "team", "--max-users", "-1").exit_code == 2

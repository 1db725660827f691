"""Named users from the console: the license page lists a named-user license's users
(``console/_license_users.html``); staff who may change licenses (``licenses:write``) assign a
member of the license's organization and unassign one, through the license-users service,
whose refusals (``USER_LIMIT``, ...) appear on the page with the API's status and code."""

from __future__ import annotations

import re

import factories
import psycopg
import pytest
from litestar.testing import TestClient
from support import STAFF_PASSWORD, console_sign_in, csrf_field, make_staff

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")

PRODUCT = "cloud_ide_console"
XSS = "<script>window.__pwned = 1</script>"
ESCAPED = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"


def messages(html: str) -> str:
    """The page's message area (where a refusal is shown)."""
    return html.split('<div id="messages"', 1)[1].split("</div>\n", 1)[0]


def assigned(db: psycopg.Connection, license_: factories.License) -> list[str]:
    rows = db.execute(
        "SELECT user_id FROM license_users WHERE license_id = %s ORDER BY assigned_at",
        (license_.id,),
    ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def team(owner_db: psycopg.Connection) -> factories.License:
    """A license of a ``user`` tier (one named user) for Initech, and a machine license."""
    factories.product(
        owner_db,
        PRODUCT,
        {
            "team": factories.Tier(seat_kind="user", max_users=1, machines_per_user=2),
            "desk": factories.Tier(),
        },
    )
    org = factories.organization(owner_db, "Initech")
    return factories.license(owner_db, org, PRODUCT, "team")


def test_the_license_page_lists_assigned_users(
    client: TestClient, settings: Settings, owner_db
) -> None:
    made = factories.product(
        owner_db,
        PRODUCT,
        {
            "team": factories.Tier(seat_kind="user", max_users=5, machines_per_user=2),
            "desk": factories.Tier(),
        },
    )
    assert made.tiers
    org = factories.organization(owner_db, "Initech")
    alice = factories.user(owner_db, org, full_name="Alice Example")
    team = factories.license(owner_db, org, PRODUCT, "team")
    desk = factories.license(owner_db, org, PRODUCT, "desk")
    factories.license_user(owner_db, team, alice)
    factories.activation(owner_db, team, user_id=alice)

    make_staff(settings, "viewer@vendor.test", "viewer")
    token = csrf_field(client.get("/console/login").text)
    client.post(
        "/console/login",
        data={"email": "viewer@vendor.test", "password": STAFF_PASSWORD, "_csrf_token": token},
    )
    page = client.get(f"/console/licenses/{team.id}")
    assert page.status_code == 200, page.text
    assert "Named users" in page.text and "1 of 5 users assigned" in page.text
    assert "Alice Example" in page.text and f"{alice}@example.com" in page.text
    machine_page = client.get(f"/console/licenses/{desk.id}")
    assert machine_page.status_code == 200 and "Named users" not in machine_page.text


def test_an_admin_assigns_and_unassigns_a_member(
    client: TestClient, settings: Settings, owner_db, team: factories.License
) -> None:
    alice = factories.user(owner_db, team.organization_id, full_name=f"Alice {XSS}")
    bob = factories.user(owner_db, team.organization_id, full_name="Bob Builder")
    outsider = factories.user(owner_db, factories.organization(owner_db, "Globex"))
    token = console_sign_in(client, settings, "admin")
    url = f"/console/licenses/{team.id}"

    page = client.get(url).text
    assert "0 of 1 users assigned" in page and "No user is assigned" in page
    options = re.findall(r'<option value="([0-9a-f-]{36})">', page)
    assert sorted(options) == sorted([str(alice), str(bob)])  # members of Initech only
    assert ESCAPED in page and XSS not in page

    done = client.post(
        f"{url}/users", data={"user_id": str(alice), "_csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == url
    assert assigned(owner_db, team) == [str(alice)]
    page = client.get(url).text
    assert "1 of 1 users assigned" in page and "license.user_assign" in page
    assert f'<option value="{alice}">' not in page and f'<option value="{bob}">' in page
    assert f'data-confirm="Unassign Alice {ESCAPED}?' in page and XSS not in page

    # The service's refusals, on the license page with the API's status and code.
    full = client.post(f"{url}/users", data={"user_id": str(bob), "_csrf_token": token})
    assert full.status_code == 409
    assert "USER_LIMIT" in messages(full.text) and "unassign someone first" in full.text
    assert "Named users" in full.text  # the license's page, not an error page
    stranger = client.post(f"{url}/users", data={"user_id": str(outsider), "_csrf_token": token})
    assert stranger.status_code == 404 and "USER_NOT_FOUND" in messages(stranger.text)
    garbage = client.post(f"{url}/users", data={"user_id": "nope", "_csrf_token": token})
    assert garbage.status_code == 422 and "VALIDATION_ERROR" in messages(garbage.text)
    assert assigned(owner_db, team) == [str(alice)]

    seat = factories.activation(owner_db, team, user_id=alice)
    gone = client.post(
        f"{url}/users/{alice}/remove", data={"_csrf_token": token}, follow_redirects=False
    )
    assert gone.status_code == 303 and gone.headers["location"] == url
    assert assigned(owner_db, team) == []
    page = client.get(url).text
    assert "No user is assigned" in page and "license.user_unassign" in page
    freed = owner_db.execute(
        "SELECT deactivation_reason FROM activations WHERE id = %s", (seat,)
    ).fetchone()
    assert freed == ("user_unassigned",)
    again = client.post(f"{url}/users/{alice}/remove", data={"_csrf_token": token})
    assert again.status_code == 404 and "LICENSE_USER_NOT_FOUND" in messages(again.text)

    # Now there is room for Bob; a machine license has no named users.
    assert client.post(f"{url}/users", data={"user_id": str(bob), "_csrf_token": token}).is_success
    assert assigned(owner_db, team) == [str(bob)]
    desk = factories.license(owner_db, team.organization_id, PRODUCT, "desk")
    machines = client.post(
        f"/console/licenses/{desk.id}/users", data={"user_id": str(bob), "_csrf_token": token}
    )
    assert machines.status_code == 409 and "NOT_A_USER_LICENSE" in machines.text
    unknown = client.post(
        f"/console/licenses/{outsider}/users", data={"user_id": str(bob), "_csrf_token": token}
    )
    assert unknown.status_code == 404 and "LICENSE_NOT_FOUND" in unknown.text


def test_viewers_and_support_cannot_assign_or_unassign(
    client: TestClient, settings: Settings, owner_db, team: factories.License
) -> None:
    alice = factories.user(owner_db, team.organization_id, full_name="Alice")
    bob = factories.user(owner_db, team.organization_id, full_name="Bob")
    factories.license_user(owner_db, team, alice)
    url = f"/console/licenses/{team.id}"
    for role in ("viewer", "support"):
        client.cookies.clear()
        token = console_sign_in(client, settings, role)
        page = client.get(url).text
        assert "Alice" in page
        assert "Unassign" not in page and ">Assign</button>" not in page
        assert 'name="user_id"' not in page
        for path, data in (
            (f"{url}/users", {"user_id": str(bob)}),
            (f"{url}/users/{alice}/remove", {}),
        ):
            refused = client.post(path, data={**data, "_csrf_token": token})
            assert refused.status_code == 403 and "INSUFFICIENT_ROLE" in refused.text, role
    assert assigned(owner_db, team) == [str(alice)]


def test_assigning_needs_the_csrf_token(
    client: TestClient, settings: Settings, owner_db, team: factories.License
) -> None:
    alice = factories.user(owner_db, team.organization_id, full_name="Alice")
    bob = factories.user(owner_db, team.organization_id, full_name="Bob")
    factories.license_user(owner_db, team, alice)
    console_sign_in(client, settings, "admin")
    url = f"/console/licenses/{team.id}"
    assert client.post(f"{url}/users", data={"user_id": str(bob)}).status_code == 403
    assert client.post(f"{url}/users/{alice}/remove").status_code == 403
    assert assigned(owner_db, team) == [str(alice)]


def test_an_admin_sets_a_license_s_own_user_count(
    client: TestClient, settings: Settings, owner_db, team: factories.License
) -> None:
    """The terms form changes ``max_users`` through the same update as the API (lowering it
    below the users assigned is refused with ``USERS_ASSIGNED``); the issue form sets it."""
    alice = factories.user(owner_db, team.organization_id)
    bob = factories.user(owner_db, team.organization_id)
    token = console_sign_in(client, settings, "admin")
    url = f"/console/licenses/{team.id}"
    assert "Named users (now 1)" in client.get(url).text

    raised = client.post(
        f"{url}/terms", data={"max_users": "2", "_csrf_token": token}, follow_redirects=False
    )
    assert raised.status_code == 303
    for user in (alice, bob):
        client.post(f"{url}/users", data={"user_id": str(user), "_csrf_token": token})
    assert sorted(assigned(owner_db, team)) == sorted([str(alice), str(bob)])
    assert "2 of 2 users assigned" in client.get(url).text

    lowered = client.post(f"{url}/terms", data={"max_users": "1", "_csrf_token": token})
    assert lowered.status_code == 409 and "USERS_ASSIGNED" in lowered.text
    row = owner_db.execute("SELECT max_users FROM licenses WHERE id = %s", (team.id,)).fetchone()
    assert row is not None and row[0] == 2

    issued = client.post(
        "/console/licenses",
        data={
            "organization_id": str(team.organization_id),
            "plan": f"{PRODUCT}/team",
            "max_users": "4",
            "metadata": "{}",
            "_csrf_token": token,
        },
    )
    assert issued.status_code == 200 and "Copy the key" in issued.text
    new = owner_db.execute(
        "SELECT max_users FROM licenses WHERE id <> %s AND tier_id IN"
        " (SELECT id FROM tiers WHERE code = 'team')",
        (team.id,),
    ).fetchone()
    assert new is not None and new[0] == 4
    machine = client.post(
        "/console/licenses",
        data={
            "organization_id": str(team.organization_id),
            "plan": f"{PRODUCT}/desk",
            "max_users": "4",
            "metadata": "{}",
            "_csrf_token": token,
        },
    )
    assert machine.status_code == 422 and "MAX_USERS_NOT_APPLICABLE" in machine.text

"""The console's organization picker: forms that take an organization (issue a license, the
license and audit filters, a webhook endpoint's in test_console_catalog_and_webhooks.py) list
organizations by name from the organizations service, and the server still checks the id it
receives: another value is a readable error, never a 500."""

from __future__ import annotations

import re
import uuid

import factories
import psycopg
import pytest
from litestar.testing import TestClient
from support import console_sign_in

from server.console import routes
from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")

XSS = "<script>window.__pwned = 1</script>"
ESCAPED = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"


def picker(html: str, name: str) -> list[tuple[str, str, bool]]:
    """The ``(value, label, selected)`` options of the form's ``<select name=name>``."""
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no <select name={name}>"
    return [
        (value, label, bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', select.group(1)
        )
    ]


def test_issuing_picks_the_organization_by_name(
    client: TestClient, settings: Settings, owner_db: psycopg.Connection, make_license
) -> None:
    made = make_license()  # the catalog, and an organization named "Acme"
    zeta = factories.organization(owner_db, "Zeta Corp")
    beta = factories.organization(owner_db, "beta labs")
    evil = factories.organization(owner_db, XSS)
    twin = factories.organization(owner_db, "Acme")  # two organizations of the same name
    token = console_sign_in(client, settings, "admin")

    form = client.get("/console/licenses/new").text
    options = picker(form, "organization_id")
    assert options[0] == ("", "Choose an organization", False)  # no organization by default
    acme, other_acme = sorted([str(made.organization_id), str(twin)])
    assert [value for value, _, _ in options[1:]] == [
        str(evil),
        acme,
        other_acme,
        str(beta),
        str(zeta),
    ]  # by name, case aside ("<" sorts first); the same name told apart by the id's start
    labels = [label for _, label, _ in options[1:]]
    assert labels[0] == ESCAPED and XSS not in form
    assert labels[1:3] == [f"Acme ({acme[:8]})", f"Acme ({other_acme[:8]})"]
    assert labels[3:] == ["beta labs", "Zeta Corp"]

    # From an organization's page: that organization is chosen.
    prefilled = client.get("/console/licenses/new", params={"organization": str(zeta)}).text
    assert [value for value, _, chosen in picker(prefilled, "organization_id") if chosen] == [
        str(zeta)
    ]
    issued = client.post(
        "/console/licenses",
        data={
            "organization_id": str(zeta),
            "plan": f"{made.product}/{made.tier}",
            "_csrf_token": token,
        },
    )
    assert issued.status_code == 200 and "LK-" in issued.text
    assert owner_db.execute(
        "SELECT count(*) FROM licenses WHERE organization_id = %s", (zeta,)
    ).fetchone() == (1,)


def test_the_server_still_checks_the_organization(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license()
    token = console_sign_in(client, settings, "admin")
    plan = f"{made.product}/{made.tier}"
    for value, status, code in (
        (str(uuid.uuid4()), 422, "UNKNOWN_ORGANIZATION"),
        ("Acme", 422, "VALIDATION_ERROR"),
        ("", 422, "VALIDATION_ERROR"),
        (f"{made.organization_id}'", 422, "VALIDATION_ERROR"),
    ):
        refused = client.post(
            "/console/licenses",
            data={"organization_id": value, "plan": plan, "_csrf_token": token},
        )
        assert (refused.status_code, code in refused.text) == (status, True), (value, refused.text)
        assert "<h1>" in refused.text  # a page saying so
    bad = client.get("/console/licenses/new", params={"organization": "not-an-id"})
    assert bad.status_code == 422 and "Not a valid id" in bad.text
    # An unknown id from a link is shown as such, not as some other organization.
    unknown = uuid.uuid4()
    page = client.get("/console/licenses/new", params={"organization": str(unknown)}).text
    assert (str(unknown), "(no such organization)", True) in picker(page, "organization_id")


def test_the_license_and_audit_filters_pick_by_name(
    client: TestClient, settings: Settings, owner_db: psycopg.Connection, make_license
) -> None:
    first = make_license()
    globex = factories.organization(owner_db, "Globex")
    second = make_license(organization_id=globex)
    console_sign_in(client, settings, "viewer")
    page = client.get("/console/licenses").text
    assert picker(page, "organization") == [
        ("", "any", False),
        (str(first.organization_id), "Acme", False),
        (str(globex), "Globex", False),
    ]
    filtered = client.get("/console/licenses", params={"organization": str(globex)}).text
    assert second.key[:8] in filtered and first.key[:8] not in filtered
    assert [label for _, label, on in picker(filtered, "organization") if on] == ["Globex"]
    audit = client.get("/console/audit", params={"organization": str(globex)}).text
    assert [label for _, label, chosen in picker(audit, "organization") if chosen] == ["Globex"]
    assert client.get("/console/audit", params={"organization": "x"}).status_code == 422


def test_many_organizations_are_narrowed_by_a_name_search(
    client: TestClient,
    settings: Settings,
    owner_db: psycopg.Connection,
    make_license,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_license()
    made = {name: factories.organization(owner_db, name) for name in ("Initech", "Umbrella")}
    factories.organization(owner_db, "Initrode")
    monkeypatch.setattr(routes, "PICKER_LIMIT", 2)
    console_sign_in(client, settings, "admin")
    page = client.get("/console/licenses/new").text
    assert len(picker(page, "organization_id")) == 3  # "choose", then the first two
    assert 'role="search" aria-label="Find an organization"' in page
    assert "search by name to narrow it" in page
    found = client.get("/console/licenses/new", params={"org_q": "INIT"}).text
    assert [label for _, label, _ in picker(found, "organization_id")] == [
        "Choose an organization",
        "Initech",
        "Initrode",
    ]
    assert 'name="org_q" value="INIT"' in found
    # The organization chosen is listed even past the first ones; the search keeps the page's
    # other parameters (the organization chosen, the filters).
    umbrella = made["Umbrella"]
    chosen = client.get("/console/licenses/new", params={"organization": str(umbrella)}).text
    assert [label for _, label, on in picker(chosen, "organization_id") if on] == ["Umbrella"]
    assert f'<input type="hidden" name="organization" value="{umbrella}">' in chosen
    none = client.get("/console/licenses/new", params={"org_q": "nothing like it"}).text
    assert "No organization's name contains “nothing like it”" in none
    filters = client.get("/console/licenses", params={"org_q": "umb", "status": "active"}).text
    assert [label for _, label, _ in picker(filters, "organization")] == ["any", "Umbrella"]
    assert '<input type="hidden" name="status" value="active">' in filters
    assert '<input type="hidden" name="org_q" value="umb">' in filters

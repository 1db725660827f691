"""The filters support staff reach for on the admin license list: `expires_before`,
`key_prefix` and free-text `q` (organization name and metadata values), validated at the
edge, documented in the OpenAPI schema, combined with tenancy; and `licentia licenses list`
paging past 100 by following the cursors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import factories
import pytest
from click.testing import CliRunner
from support import assert_problem, bearer

from server.cli import main

API = "/api/v1/licenses"


def _ids(client, headers, **params) -> list[str]:
    response = client.get(API, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_expires_before(client, admin_key, issue, make_org, owner_db) -> None:
    org = make_org("Acme")
    soon = issue(org, expires_at="2031-01-15T00:00:00Z")
    later = issue(org, expires_at="2031-03-01T00:00:00Z")
    perpetual = issue(org, tier="free")
    past = issue(org)
    owner_db.execute(
        "UPDATE licenses SET expires_at = now() - interval '1 day' WHERE id = %s", (past["id"],)
    )
    auth = bearer(admin_key)
    assert _ids(client, auth, expires_before="2031-02-01T00:00:00Z") == [soon["id"], past["id"]]
    # Strictly before; an offset is honoured (2031-01-15T00:00Z is 01:00 in +01:00).
    assert _ids(client, auth, expires_before="2031-01-15T00:00:00Z") == [past["id"]]
    assert _ids(client, auth, expires_before="2031-01-15T01:00:01+01:00") == [
        soon["id"],
        past["id"],
    ]
    assert _ids(client, auth, expires_before="2031-02-01T00:00:00Z", status="active") == [
        soon["id"]
    ]
    assert perpetual["id"] not in _ids(client, auth, expires_before="8999-01-01T00:00:00Z")
    assert later["id"] in _ids(client, auth, expires_before="8999-01-01T00:00:00Z")


def test_key_prefix(client, admin_key, issue, make_org) -> None:
    org = make_org("Acme")
    first, second = issue(org), issue(org)
    prefix = first["key_prefix"]
    assert prefix.startswith("LK-") and len(prefix) == 8
    assert first["key"].startswith(prefix + "-")
    auth = bearer(admin_key)
    assert _ids(client, auth, key_prefix=prefix) == [first["id"]]
    assert _ids(client, auth, key_prefix=f"  {prefix.lower()} ") == [first["id"]]
    assert _ids(client, auth, key_prefix=second["key_prefix"]) == [second["id"]]
    unused = next(p for p in ("LK-00000", "LK-00001") if p not in (prefix, second["key_prefix"]))
    assert _ids(client, auth, key_prefix=unused) == []


def test_free_text_over_organization_names_and_metadata(
    client, admin_key, issue, make_org, user_headers
) -> None:
    initech, globex = make_org("Initech Ltd"), make_org("Globex 100% Corp")
    by_name = issue(initech)
    by_order = issue(globex, metadata={"order": "INV-2027-0042", "seats_paid": 12})
    nested = issue(globex, metadata={"billing": {"contact": ["ap@Umbrella.example"]}})
    underscore = issue(initech, metadata={"ref": "a_b"})
    auth = bearer(admin_key)

    assert _ids(client, auth, q="initech") == [by_name["id"], underscore["id"]]
    assert _ids(client, auth, q="INITECH LTD") == [by_name["id"], underscore["id"]]
    assert _ids(client, auth, q="inv-2027") == [by_order["id"]]
    assert _ids(client, auth, q="umbrella.EXAMPLE") == [nested["id"]]  # any depth, any case
    assert _ids(client, auth, q="12") == [by_order["id"]]  # numbers are searched too
    assert _ids(client, auth, q="order") == []  # keys are not values
    # Wildcards are plain characters: "%" and "_" match only themselves.
    assert _ids(client, auth, q="100%") == [by_order["id"], nested["id"]]
    assert _ids(client, auth, q="%") == [by_order["id"], nested["id"]]
    assert _ids(client, auth, q="a_b") == [underscore["id"]]
    assert _ids(client, auth, q="_") == [underscore["id"]]
    assert _ids(client, auth, q="'; DROP TABLE licenses; --") == []
    # Filters combine, and a user's search stays within the user's organization.
    assert _ids(client, auth, q="globex", organization_id=str(initech)) == []
    member = user_headers(globex, "member")
    assert _ids(client, member, q="initech") == []
    assert _ids(client, member, q="inv-2027") == [by_order["id"]]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"expires_before": "tomorrow"}, "expires_before"),
        ({"expires_before": "2031-01-01T00:00:00"}, "expires_before"),  # no offset
        ({"expires_before": "0001-01-01T00:00:00Z"}, "expires_before"),
        ({"expires_before": "9999-01-01T00:00:00Z"}, "expires_before"),
        ({"key_prefix": "LK-123"}, "key_prefix"),
        ({"key_prefix": "XX-12345-"}, "key_prefix"),
        ({"key_prefix": "LK-12345%"}, "key_prefix"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "a\x00b"}, "q"),
    ],
)
def test_bad_filter_values_are_422_naming_the_parameter(
    client, admin_key, catalog, params, name
) -> None:
    body = assert_problem(
        client.get(API, params=params, headers=bearer(admin_key)), 422, "VALIDATION_ERROR"
    )
    assert name in json.dumps(body), body


def test_the_filters_are_in_the_openapi_schema(client) -> None:
    document = client.get("/schema/openapi.json").json()
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/licenses"]["get"]["parameters"]}
    assert '"format": "date-time"' in json.dumps(parameters["expires_before"]["schema"])
    assert "pattern" in json.dumps(parameters["key_prefix"]["schema"])
    assert '"maxLength": 200' in json.dumps(parameters["q"]["schema"])
    for name in ("expires_before", "key_prefix", "q"):
        assert parameters[name]["in"] == "query" and parameters[name]["description"], name


def _cli_env(settings) -> dict[str, str]:
    return {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_MIGRATION_DATABASE_URL": settings.migration_database_url or "",
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
    }


def test_cli_list_pages_past_100(settings, catalog, make_org, owner_db) -> None:
    org = make_org("Many Licenses Inc")
    start = datetime(2030, 1, 1, tzinfo=UTC)
    # 205 licenses with distinct creation times (the page order).
    for i in range(1, 206):
        factories.license(
            owner_db,
            org,
            key=f"LK-{i:05d}-{uuid.uuid4()}",
            created_at=start + timedelta(seconds=i),
            metadata={"n": i},
        )
    runner = CliRunner()
    env = _cli_env(settings)

    def lines(*args: str) -> list[str]:
        result = runner.invoke(main, ["licenses", "list", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    def prefixes(rows: list[str]) -> list[str]:
        return [row.split()[1] for row in rows]

    expected = [f"LK-{i:05d}" for i in range(1, 206)]
    everything = lines("--all")
    assert prefixes(everything) == expected  # three pages, in order, nothing twice
    assert prefixes(lines("--limit", "150")) == expected[:150]
    default = runner.invoke(main, ["licenses", "list"], env=env)
    assert prefixes(default.stdout.splitlines()) == expected[:100]
    assert "--all" in default.stderr and "--cursor" in default.stderr  # more are there
    cursor = default.stderr.split("--cursor ")[1].split()[0]
    assert prefixes(lines("--cursor", cursor, "--limit", "100")) == expected[100:200]
    assert "--cursor" not in runner.invoke(main, ["licenses", "list", "--all"], env=env).stderr
    # The new filters are on the command line too.
    assert prefixes(lines("--key-prefix", "lk-00042")) == ["LK-00042"]
    assert prefixes(lines("--search", "Many Licenses", "--limit", "3")) == expected[:3]
    assert lines("--expires-before", "2031-01-01T00:00:00+00:00") == []
    bad = runner.invoke(main, ["licenses", "list", "--key-prefix", "nope"], env=env)
    assert bad.exit_code != 0 and "key_prefix" in bad.output
    assert lines("--all", "--product", "other") == []

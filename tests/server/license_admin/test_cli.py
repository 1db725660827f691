"""`licentia licenses issue|list`: the same service as POST /licenses."""

from __future__ import annotations

import hashlib
import re

import pytest


@pytest.fixture
def cli(licentia):
    return lambda *args: licentia("licenses", *args)


def test_issue_prints_only_the_key(cli, catalog, make_org, owner_db):
    org = make_org("Acme Robotics")
    result = cli(
        "issue",
        "--org",
        "Acme Robotics",
        "--product",
        "local_cli",
        "--tier",
        "pro",
        "--days",
        "30",
        "--max-activations",
        "7",
    )
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    assert re.fullmatch(r"LK(-[0-9A-Z]{5}){7}", key), result.stdout
    row = owner_db.execute(
        "SELECT organization_id, max_activations, expires_at - starts_at, key_hash FROM licenses"
    ).fetchone()
    assert row[0] == org
    assert row[1] == 7
    assert row[2].days == 30
    assert bytes(row[3]) == hashlib.sha256(key.encode()).digest()
    actor = owner_db.execute(
        "SELECT actor_type FROM audit_events WHERE action = 'license.issue'"
    ).fetchone()[0]
    assert actor == "cli"

    by_id = cli("issue", "--org", str(org), "--product", "local_cli", "--tier", "free")
    assert by_id.exit_code == 0
    listed = cli("list", "--org", str(org))
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "local_cli/pro" in lines[0] and "seats 0/7" in lines[0]
    assert "never" in lines[1]
    assert key not in listed.stdout


def test_issue_errors_are_clear(cli, catalog, make_org):
    make_org("Twin")
    make_org("Twin")
    cases = [
        (["--org", "Nobody"], "No organization named"),
        (["--org", "Twin"], "pass the id"),
        (["--org", "00000000-0000-0000-0000-000000000000"], "No organization with id"),
    ]
    for args, message in cases:
        result = cli("issue", *args, "--product", "local_cli", "--tier", "pro")
        assert result.exit_code == 1
        assert message in result.stderr
    make_org("Solo")
    unknown = cli("issue", "--org", "Solo", "--product", "local_cli", "--tier", "gold")
    assert unknown.exit_code == 1
    assert "UNKNOWN_TIER" in unknown.stderr
    bad_product = cli("issue", "--org", "Solo", "--product", "Not A Code", "--tier", "pro")
    assert bad_product.exit_code == 1
    assert "invalid input" in bad_product.stderr
    assert (
        cli("issue", "--org", "Solo", "--product", "x", "--tier", "y", "--days", "-1").exit_code
        == 2
    )

"""`licentia licenses usage|usage-reset`: the same service as /api/v1/licenses/{id}/usage and
its reset (audited, with the counts cleared)."""

from __future__ import annotations

import uuid

import pytest

METERS = {
    "automations": {"limit": 3, "period": "month"},
    "installs": {"limit": 2, "period": None},
}


@pytest.fixture
def cli(licentia):
    return lambda *args: licentia("licenses", *args)


def consume(client, lic, meter: str, amount: int) -> None:
    body = {"license_key": lic.key, "product": lic.product, "meter": meter, "amount": amount}
    answer = client.post(
        "/api/v1/licenses/usage", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert answer.status_code == 200, answer.text


def test_usage_shows_each_meter_and_its_past_periods(cli, client, make_license, sql) -> None:
    lic = make_license(tier="metered", meters=METERS)
    consume(client, lic, "automations", 2)
    consume(client, lic, "installs", 1)
    sql.all(  # a past month, as a counter row of its own
        "INSERT INTO license_usage (organization_id, license_id, meter, period, period_start, "
        "period_end, used) VALUES (%s, %s, 'automations', 'month', "
        "'2020-01-01T00:00:00Z', '2020-02-01T00:00:00Z', 3) RETURNING id",
        lic.organization_id,
        lic.id,
    )
    shown = cli("usage", str(lic.id))
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.strip().splitlines()
    assert lines[0].startswith("automations  2/3 used, 1 left  (month, until ")
    assert lines[1] == "  2020-01-01T00:00:00+00:00 .. 2020-02-01T00:00:00+00:00  3"
    assert lines[2] == "installs  1/2 used, 1 left  (never resets)"
    assert len(lines) == 3

    plain = make_license(tier="plain")
    nothing = cli("usage", str(plain.id))
    assert nothing.exit_code == 0 and "has no usage meters" in nothing.stdout


def test_usage_reset_is_audited_like_the_api(cli, client, make_license, sql) -> None:
    lic = make_license(tier="metered", meters=METERS)
    consume(client, lic, "automations", 3)
    consume(client, lic, "installs", 2)

    one = cli("usage-reset", str(lic.id), "--meter", "automations")
    assert one.exit_code == 0, one.output
    assert f"reset automations of license {lic.id}" in one.stderr
    assert "automations  0/3 used, 3 left" in one.stdout
    assert "installs  2/2 used, 0 left" in one.stdout
    every = cli("usage-reset", str(lic.id))
    assert every.exit_code == 0, every.output
    assert "installs  0/2 used, 2 left" in every.stdout
    audited = sql.all(
        "SELECT actor_type, data FROM audit_events WHERE action = 'license.usage_reset' "
        "AND target_id = %s ORDER BY id",
        str(lic.id),
    )
    assert audited == [
        ("cli", {"meters": {"automations": 3}}),
        ("cli", {"meters": {"automations": 0, "installs": 2}}),
    ]


def test_errors_are_one_line_and_exit_non_zero(cli, make_license) -> None:
    lic = make_license(tier="metered", meters=METERS)
    cases = [
        (("usage-reset", str(lic.id), "--meter", "nope"), "METER_NOT_FOUND"),
        (("usage-reset", str(uuid.uuid4())), "LICENSE_NOT_FOUND"),
        (("usage", str(uuid.uuid4())), "LICENSE_NOT_FOUND"),
        (("usage-reset", str(lic.id), "--meter", "Not A Name"), "invalid input"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
    assert cli("usage", "not-a-uuid").exit_code == 2

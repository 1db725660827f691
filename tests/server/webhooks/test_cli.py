"""`licentia webhooks add|list|remove|deliveries`: the same service as the API."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from support import bearer

from server.cli import main


@pytest.fixture
def cli(settings, signing_key, monkeypatch):
    monkeypatch.setenv("LICENTIA_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LICENTIA_KEY_ENCRYPTION_KEY", settings.key_encryption_key or "")
    monkeypatch.setenv("LICENTIA_WEBHOOK_ALLOW_INSECURE", "1")
    monkeypatch.setenv("LICENTIA_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.delenv("LICENTIA_MIGRATION_DATABASE_URL", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, ["webhooks", *args], catch_exceptions=False)


def test_add_list_deliveries_remove(cli, outbox_client, admin_key, receiver, sql) -> None:
    added = cli("add", receiver.url + "/hook", "--event", "license.*", "--description", "CRM")
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "\n" not in secret  # the secret alone on stdout
    endpoint_id = sql.one("SELECT id FROM webhook_endpoints")
    assert secret.encode() not in bytes(sql.one("SELECT secret FROM webhook_endpoints"))
    listed = cli("list")
    assert f"{endpoint_id}  enabled  -  license.*  {receiver.url}/hook" in listed.stdout
    tested = outbox_client.post(
        f"/api/v1/webhook-endpoints/{endpoint_id}/test", headers=bearer(admin_key)
    ).json()
    assert tested["delivered"] is True
    deliveries = cli("deliveries", str(endpoint_id))
    assert "webhook.test  attempts 1  last 200  delivered" in deliveries.stdout
    assert cli("remove", str(endpoint_id)).exit_code == 0
    assert sql.one("SELECT count(*) FROM webhook_endpoints") == 0
    refused = CliRunner().invoke(main, ["webhooks", "remove", str(endpoint_id)])
    assert refused.exit_code != 0 and "WEBHOOK_ENDPOINT_NOT_FOUND" in refused.output


def test_add_refuses_a_forbidden_url(cli, monkeypatch) -> None:
    monkeypatch.setenv("LICENTIA_WEBHOOK_ALLOW_PRIVATE", "0")
    refused = CliRunner().invoke(main, ["webhooks", "add", "http://127.0.0.1:9/hook"])
    assert refused.exit_code != 0 and "WEBHOOK_URL_FORBIDDEN" in refused.output

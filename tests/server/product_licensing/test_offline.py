"""Air-gapped activation: request file -> `offline activate` -> token file, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from licentia_verifier import Verifier

from server.cli import main


@pytest.fixture
def cli_env(settings) -> dict[str, str]:
    return {
        "LICENTIA_DATABASE_URL": settings.database_url,
        "LICENTIA_MIGRATION_DATABASE_URL": settings.migration_database_url or "",
        "LICENTIA_KEY_ENCRYPTION_KEY": settings.key_encryption_key or "",
    }


def request_file(tmp_path: Path, lic, kind: str = "activation_request", **extra) -> Path:
    data = {
        "type": kind,
        "version": 1,
        "product": lic.product,
        "fingerprint": "air-gapped-machine",
        "license_key": lic.key,
        "nonce": "offline-nonce-1",
        "created_at": "2026-11-25T10:00:00Z",
        **extra,
    }
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(data))
    return path


def test_offline_round_trip(client, settings, sql, make_license, cli_env, tmp_path) -> None:
    lic = make_license(max_activations=1)
    request = request_file(tmp_path, lic, name="vault-pc", platform="windows-x86_64")
    output = tmp_path / "token.json"
    runner = CliRunner()
    result = runner.invoke(
        main, ["offline", "activate", str(request), "--output", str(output)], env=cli_env
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(output.read_text())
    assert set(answer) == {
        "type",
        "version",
        "token",
        "activation_id",
        "lease_expires_at",
        "nonce",
        "key_certificate",
        "key_revocations",
        "root_endorsements",
    }
    assert answer["type"] == "activation_response" and answer["version"] == 1
    assert answer["nonce"] == "offline-nonce-1"
    jwks = client.get("/.well-known/jwks.json").json()
    verifier = Verifier.from_jwks(jwks, product=lic.product, issuer=settings.issuer)
    verified = verifier.verify_activation(answer["token"], fingerprint="air-gapped-machine")
    assert verified.activation_id == answer["activation_id"]
    assert sql.one("SELECT name FROM activations") == "vault-pc"

    # The same file again: the same activation (idempotent), the seat limit still holds.
    again = runner.invoke(main, ["offline", "activate", str(request)], env=cli_env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["activation_id"] == answer["activation_id"]
    assert sql.live(lic.id) == 1

    # Deactivation in reverse frees the seat.
    release = request_file(tmp_path, lic, "deactivation_request")
    done = runner.invoke(main, ["offline", "deactivate", str(release)], env=cli_env)
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["activation_id"] == answer["activation_id"]
    assert sql.live(lic.id) == 0
    twice = runner.invoke(main, ["offline", "deactivate", str(release)], env=cli_env)
    assert twice.exit_code != 0 and "NOT_ACTIVATED" in twice.output


def test_the_request_file_can_be_posted_to_the_api(
    client, settings, make_license, tmp_path
) -> None:
    lic = make_license()
    request = json.loads(request_file(tmp_path, lic).read_text())
    response = client.post("/api/v1/licenses/activate", json=request)
    assert response.status_code == 201
    answer = response.json()
    assert answer["type"] == "activation_response" and answer["nonce"] == "offline-nonce-1"
    release = json.loads(request_file(tmp_path, lic, "deactivation_request").read_text())
    assert client.post("/api/v1/licenses/deactivate", json=release).status_code == 204


def test_bad_request_files_are_refused(make_license, cli_env, tmp_path) -> None:
    lic = make_license(max_activations=0)
    runner = CliRunner()
    wrong_kind = request_file(tmp_path, lic, "deactivation_request")
    result = runner.invoke(main, ["offline", "activate", str(wrong_kind)], env=cli_env)
    assert result.exit_code != 0 and "activation_request" in result.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    result = runner.invoke(main, ["offline", "activate", str(garbage)], env=cli_env)
    assert result.exit_code != 0 and "not a valid" in result.output
    full = runner.invoke(
        main, ["offline", "activate", str(request_file(tmp_path, lic))], env=cli_env
    )
    assert full.exit_code != 0 and "ACTIVATION_LIMIT" in full.output


def test_the_verifier_client_files_work_with_the_cli(
    client,
    settings,
    sql,
    make_license,
    cli_env,
    tmp_path,
) -> None:
    """LicenseClient.offline_request -> offline activate -> LicenseClient.install, and back."""
    from licentia_verifier.client import LicenseClient

    lic = make_license()
    jwks = client.get("/.well-known/jwks.json").json()
    verifier = Verifier.from_jwks(jwks, product=lic.product, issuer=settings.issuer)
    machine = LicenseClient(
        "http://127.0.0.1:9",
        product=lic.product,
        verifier=verifier,
        cache_dir=tmp_path / "cache",
        fingerprint="client-machine",
    )
    request = tmp_path / "request.json"
    machine.write_offline_request(request, lic.key, name="no-network-box")
    token_file = tmp_path / "token.json"
    runner = CliRunner()
    result = runner.invoke(
        main, ["offline", "activate", str(request), "-o", str(token_file)], env=cli_env
    )
    assert result.exit_code == 0, result.output
    installed = machine.install(token_file)
    assert installed.license_id == str(lic.id)
    assert sql.live(lic.id) == 1

    release = tmp_path / "release.json"
    machine.write_offline_deactivation_request(release)
    result = runner.invoke(main, ["offline", "deactivate", str(release)], env=cli_env)
    assert result.exit_code == 0, result.output
    assert sql.live(lic.id) == 0

"""A Python client generated from ``/schema/openapi.json`` by a standard generator
(openapi-python-client) drives the main flow against a live ``licentia serve``: set up a
product, issue a license, activate a machine, validate, revoke, validate again."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from support import make_api_key


@pytest.fixture
def generated(live_server_factory, settings, tmp_path: Path):
    server = live_server_factory()
    document = tmp_path / "openapi.json"
    document.write_bytes(httpx.get(f"{server.base_url}/schema/openapi.json").content)
    package = f"licentia_client_{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / package),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield server, package, make_api_key(settings, ["*"])
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def test_the_main_flow_through_a_generated_client(generated) -> None:
    server, package, admin_key = generated

    def load(name: str):
        return importlib.import_module(f"{package}.{name}")

    client_module, models = load("client"), load("models")
    admin = client_module.AuthenticatedClient(
        base_url=server.base_url, token=admin_key, raise_on_unexpected_status=True
    )
    product_client = client_module.Client(base_url=server.base_url, raise_on_unexpected_status=True)

    organization = load("api.organizations.api_v1_organizations_create").sync(
        client=admin, body=models.OrganizationCreate(name="Generated Client Org")
    )
    assert isinstance(organization, models.OrganizationRead), organization
    product = load("api.products.api_v1_products_create_product").sync(
        client=admin, body=models.ProductCreate(code="gen_app", name="Generated App")
    )
    assert isinstance(product, models.ProductRead), product
    tier = load("api.products.api_v1_products_code_tiers_create_tier").sync(
        "gen_app", client=admin, body=models.TierCreate(code="pro", name="Pro", max_activations=2)
    )
    assert isinstance(tier, models.TierRead), tier
    issued = load("api.license_admin.api_v1_licenses_issue").sync(
        client=admin,
        body=models.LicenseCreate(organization_id=organization.id, product="gen_app", tier="pro"),
    )
    assert isinstance(issued, models.LicenseCreated), issued

    activated = load("api.product_licensing.api_v1_licenses_activate_activate").sync(
        client=product_client,
        body=models.ActivateRequest(
            license_key=issued.key, product="gen_app", fingerprint="generated-machine"
        ),
    )
    assert isinstance(activated, models.ActivationResponse), activated
    assert activated.max_activations == 2 and activated.activations_count == 1

    validate = load("api.product_licensing.api_v1_licenses_validate_validate").sync
    body = models.ValidateRequest(
        license_key=issued.key, product="gen_app", fingerprint="generated-machine"
    )
    answer = validate(client=product_client, body=body)
    assert isinstance(answer, models.ValidateResponse), answer
    assert answer.valid and answer.code == "VALID" and answer.token

    revoked = load("api.license_admin.api_v1_licenses_license_id_revoke_revoke").sync(
        issued.id, client=admin
    )
    assert isinstance(revoked, models.LicenseRead), revoked
    assert str(revoked.status) == "revoked"

    answer = validate(client=product_client, body=body)
    assert isinstance(answer, models.ValidateResponse), answer
    assert not answer.valid and answer.code == "REVOKED"

    missing = load("api.license_admin.api_v1_licenses_license_id_get_license").sync(
        uuid.uuid4(), client=admin
    )
    assert isinstance(missing, models.Problem) and missing.code == "LICENSE_NOT_FOUND", missing

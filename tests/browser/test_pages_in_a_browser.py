"""The console and the portal in Chromium against a real ``licentia serve``: the flows end to
end, the key shown once, seats freed by customers, CSRF, XSS, sessions across tabs, roles,
and axe-core on every page visited. Screenshots feed docs/console.md."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from licentia_verifier import LicenseClient, Verifier
from support import STAFF_PASSWORD, LiveServer, server_env

from server.settings import Settings

CUSTOMER_PASSWORD = "correct horse battery staple"
XSS = "<script>window.__pwned = 1</script>"


def catalog(api: httpx.Client) -> None:
    assert api.post("/api/v1/products", json={"code": "studio", "name": "Studio"}).is_success
    tier = {"code": "pro", "name": "Pro", "max_activations": 2, "features": {"export": True}}
    assert api.post("/api/v1/products/studio/tiers", json=tier).is_success


def issue(api: httpx.Client, organization_id: str, **extra: Any) -> dict[str, Any]:
    response = api.post(
        "/api/v1/licenses",
        json={"organization_id": organization_id, "product": "studio", "tier": "pro", **extra},
    )
    assert response.status_code == 201, response.text
    return response.json()


def activate(live: LiveServer, key: str, name: str) -> str:
    fingerprint = uuid.uuid4().hex
    response = httpx.post(
        f"{live.base_url}/api/v1/licenses/activate",
        json={"license_key": key, "product": "studio", "fingerprint": fingerprint, "name": name},
    )
    assert response.status_code == 201, response.text
    return fingerprint


def console_sign_in(page: Any, email: str, password: str = STAFF_PASSWORD) -> None:
    page.goto("/console/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console")


def portal_sign_up(page: Any, organization: str, email: str) -> None:
    page.goto("/portal/signup")
    page.get_by_label("Organization name").fill(organization)
    page.get_by_label("Your name").fill("Grace")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(CUSTOMER_PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/portal")


def portal_sign_in(page: Any, email: str) -> None:
    page.goto("/portal/login")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(CUSTOMER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal")


def test_a_vendor_issues_watches_and_revokes(
    context: Any, live: LiveServer, api: httpx.Client, settings: Settings, check_page: Callable
) -> None:
    # The staff account comes from the command line, as a new vendor makes it.
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "admin",
            "create-staff",
            "--email",
            "ops@vendor.test",
            "--role",
            "admin",
        ],
        env=server_env(settings, LICENTIA_STAFF_PASSWORD=STAFF_PASSWORD),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    catalog(api)
    organization = api.post("/api/v1/organizations", json={"name": "Initech"}).json()

    page = context.new_page()
    page.goto("/console")
    page.wait_for_url("**/console/login")
    check_page(page, "console-login")
    console_sign_in(page, "ops@vendor.test")
    check_page(page)

    page.get_by_role("link", name="Organizations").click()
    page.get_by_label("Name contains").fill("init")
    page.get_by_role("button", name="Search").click()
    check_page(page, "console-organizations")
    page.get_by_role("link", name="Initech").click()
    check_page(page, "console-organization")
    page.get_by_role("link", name="Issue a license to this organization").click()
    assert page.get_by_label("Organization id").input_value() == organization["id"]
    page.get_by_label("Metadata (JSON object)").fill('{"order": "INV-1"}')
    check_page(page, "console-issue")
    page.get_by_role("button", name="Issue").click()

    key = page.locator("#license-key").inner_text().strip()
    assert re.fullmatch(r"LK(-[0-9A-Z]{5}){7}", key), key
    assert page.get_by_role("button", name="Copy the key").is_visible()
    check_page(page, "console-issued")
    page.get_by_role("link", name="Open the license").click()
    license_url = page.url
    assert key not in page.content()  # never again: the prefix only
    assert key[:8] in page.content()

    # A machine activates through the product API; the license page shows it.
    activate(live, key, "design-laptop")
    page.reload()
    assert page.get_by_role("cell", name="design-laptop").is_visible()
    assert "1 of 2" in page.content()
    check_page(page, "console-license")

    page.get_by_role("button", name="Revoke").click()  # the confirmation is accepted
    page.wait_for_url(license_url)
    assert page.locator("h1 .badge").inner_text() == "revoked"
    refused = httpx.post(
        f"{live.base_url}/api/v1/licenses/validate",
        json={"license_key": key, "product": "studio"},
    ).json()
    assert refused["code"] == "REVOKED"

    page.get_by_role("link", name="Licenses", exact=True).click()
    page.get_by_label("Key prefix").fill(key[:8])
    page.get_by_role("button", name="Search").click()
    assert page.get_by_role("link", name=re.compile(key[:8])).is_visible()
    check_page(page, "console-licenses")
    for name, shot in (
        ("Products", "console-products"),
        ("Signing keys", "console-keys"),
        ("Audit log", "console-audit"),
    ):
        page.get_by_role("link", name=name).click()
        check_page(page, shot)
    assert "license.revoke" in page.content()

    page.get_by_role("link", name="Overview").click()
    check_page(page, "console-overview")
    page.get_by_role("link", name="Account").click()
    check_page(page)

    csrf_is_checked(context, api, organization["id"])
    names_render_as_text(page, live, api, check_page)
    signing_out_in_one_tab_ends_the_other(context, page)


def test_a_customer_frees_a_seat_and_the_product_is_refused(
    context: Any,
    live: LiveServer,
    api: httpx.Client,
    settings: Settings,
    check_page: Callable,
    tmp_path: Path,
) -> None:
    catalog(api)
    page = context.new_page()
    page.goto("/portal/signup")
    check_page(page, "portal-signup")
    portal_sign_up(page, "Globex", "grace@globex.test")
    me = api.get("/api/v1/organizations").json()["items"]
    organization_id = next(o["id"] for o in me if o["name"] == "Globex")
    license_ = issue(api, organization_id)
    fingerprint = activate(live, license_["key"], "old-laptop")

    page.reload()
    assert license_["key"] not in page.content()
    check_page(page, "portal-licenses")
    page.get_by_role("link", name=re.compile(license_["key_prefix"])).click()
    assert page.get_by_role("cell", name="old-laptop").is_visible()
    check_page(page, "portal-license")
    page.get_by_role("button", name="Free this seat").click()
    page.wait_for_load_state()
    assert page.get_by_role("cell", name="freed").is_visible()

    check_in = httpx.post(
        f"{live.base_url}/api/v1/licenses/check-in",
        json={"license_key": license_["key"], "product": "studio", "fingerprint": fingerprint},
    )
    assert check_in.status_code == 404 and check_in.json()["code"] == "NOT_ACTIVATED"

    # An air-gapped machine: its request file up, the signed answer down, installed there.
    verifier = Verifier.from_jwks(
        httpx.get(f"{live.base_url}/.well-known/jwks.json").json(),
        product="studio",
        issuer=settings.issuer,
    )
    machine = LicenseClient(
        "http://127.0.0.1:9",  # never reached: the machine has no network
        product="studio",
        verifier=verifier,
        cache_dir=tmp_path / "machine",
        fingerprint="lab-pc-fingerprint",
    )
    request_file = tmp_path / "activation-request.json"
    request_file.write_text(json.dumps(machine.offline_request(license_["key"], name="lab-pc")))
    page.get_by_label("Activation request file").set_input_files(str(request_file))
    with page.expect_download() as download:
        page.get_by_role("button", name="Activate and download the answer").click()
    answer = tmp_path / "activation-response.json"
    download.value.save_as(str(answer))
    assert machine.install(answer).license_id == license_["id"]
    page.reload()
    assert page.get_by_role("cell", name="lab-pc").is_visible()

    page.get_by_role("link", name="Projects").click()
    page.get_by_label("Name", exact=True).fill("Apollo")
    page.get_by_role("button", name="Create").click()
    assert page.get_by_role("cell", name="Apollo", exact=True).is_visible()
    check_page(page, "portal-projects")
    page.get_by_role("link", name="Members").click()
    check_page(page, "portal-members")
    page.get_by_role("link", name="Account").click()
    check_page(page)

    # A machine named like a script is shown as text in the portal too.
    activate(live, license_["key"], XSS)
    page.goto(f"/portal/licenses/{license_['id']}")
    assert page.get_by_role("cell", name=XSS, exact=True).is_visible()
    assert page.evaluate("window.__pwned") is None

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/portal/login")
    check_page(page, "portal-login")
    a_member_sees_no_management(context, live, api, check_page)


def csrf_is_checked(context: Any, api: httpx.Client, organization_id: str) -> None:
    license_ = issue(api, organization_id)
    # The session cookie goes along (same site), the token does not.
    response = context.request.post(
        f"/console/licenses/{license_['id']}/revoke", form={"confirm": "yes"}
    )
    assert response.status == 403
    assert api.get(f"/api/v1/licenses/{license_['id']}").json()["status"] == "active"


def names_render_as_text(page: Any, live: LiveServer, api: httpx.Client, check: Callable) -> None:
    organization = api.post("/api/v1/organizations", json={"name": XSS}).json()
    license_ = issue(api, organization["id"], metadata={"note": XSS})
    activate(live, license_["key"], XSS)
    page.goto(f"/console/licenses/{license_['id']}")
    # The organization's name and the machine's, each a table cell of plain text.
    assert page.get_by_role("link", name=XSS).is_visible()
    assert page.get_by_role("cell", name=XSS, exact=True).count() == 2
    assert XSS.replace("<", "\\u003c").replace(">", "\\u003e") in page.content() or (
        "&lt;script&gt;" in page.content()
    )
    page.goto(f"/console/organizations/{organization['id']}")
    page.goto("/console/organizations")
    assert page.evaluate("window.__pwned") is None
    check(page)


def signing_out_in_one_tab_ends_the_other(context: Any, first: Any) -> None:
    second = context.new_page()
    second.goto("/console/licenses")
    second.get_by_role("button", name="Sign out").click()
    second.wait_for_url("**/console/login")
    first.reload()
    assert first.url.endswith("/console/login")


def a_member_sees_no_management(
    browser_context: Any, live: LiveServer, api: httpx.Client, check_page: Callable
) -> None:
    context = browser_context
    owner = httpx.post(
        f"{live.base_url}/api/v1/auth/signup",
        json={
            "email": "owner@umbrella.test",
            "password": CUSTOMER_PASSWORD,
            "full_name": "Owner",
            "organization_name": "Umbrella",
        },
    ).json()
    headers = {"Authorization": f"Bearer {owner['access_token']}"}
    member = httpx.post(
        f"{live.base_url}/api/v1/users",
        headers=headers,
        json={
            "email": "member@umbrella.test",
            "full_name": "Member",
            "role": "member",
            "password": CUSTOMER_PASSWORD,
        },
    )
    assert member.status_code == 201, member.text
    license_ = issue(api, owner["user"]["organization_id"])
    activate(live, license_["key"], "shared-pc")
    activation = api.get(f"/api/v1/licenses/{license_['id']}/activations").json()["items"][0]

    page = context.new_page()
    portal_sign_in(page, "member@umbrella.test")
    page.goto(f"/portal/licenses/{license_['id']}")
    assert page.get_by_role("cell", name="shared-pc").is_visible()
    assert page.get_by_role("button", name="Free this seat").count() == 0
    page.goto("/portal/members")
    assert page.get_by_role("button", name="Remove").count() == 0
    assert page.get_by_role("button", name="Add").count() == 0
    check_page(page)
    token = page.locator("input[name=_csrf_token]").first.input_value()
    freed = context.request.post(
        f"/portal/licenses/{license_['id']}/machines/{activation['id']}/free",
        form={"_csrf_token": token},
    )
    assert freed.status == 403
    invited = context.request.post(
        "/portal/members",
        form={
            "_csrf_token": token,
            "email": "x@umbrella.test",
            "full_name": "X",
            "password": CUSTOMER_PASSWORD,
        },
    )
    assert invited.status == 403
    assert api.get(f"/api/v1/licenses/{license_['id']}").json()["activations_count"] == 1

    # Another organization's license is not found, not forbidden.
    other = issue(api, api.post("/api/v1/organizations", json={"name": "Other"}).json()["id"])
    assert context.request.get(f"/portal/licenses/{other['id']}").status == 404

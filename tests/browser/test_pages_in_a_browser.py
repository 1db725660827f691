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
from playwright.sync_api import expect
from support import STAFF_PASSWORD, LiveServer, Receiver, server_env

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


def test_a_new_vendor_starts_from_nothing_issues_watches_and_revokes(
    context: Any, live: LiveServer, api: httpx.Client, settings: Settings, check_page: Callable
) -> None:
    """Issue 10's "done when": an empty server, a staff account from the command line, and
    everything else in the browser: a product and its tiers, a customer organization, a
    license (its key shown once), a machine seen activating, a change of tier, the revocation;
    then the webhook pages."""
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
    assert api.get("/api/v1/products").json()["items"] == []  # the catalog is empty

    page = context.new_page()
    page.goto("/console")
    page.wait_for_url("**/console/login")
    check_page(page, "console-login")
    console_sign_in(page, "ops@vendor.test")
    check_page(page)

    # The catalog: a product, then its tiers, from the products page.
    page.get_by_role("link", name="Products").click()
    assert "No products yet" in page.content()
    page.get_by_label("Code").fill("studio")
    page.get_by_label("Name", exact=True).fill("Studio")
    page.get_by_role("button", name="Create the product").click()
    page.wait_for_url("**/console/products/studio/new-tier")
    page.get_by_label("Code").fill("pro")
    page.get_by_label("Name", exact=True).fill("Pro")
    page.get_by_label("Seats (machines at once)").fill("2")
    page.get_by_label("Features").fill('{"export": true}')
    page.evaluate("window.scrollTo(0, 0)")
    check_page(page, "console-tier")
    page.get_by_role("button", name="Create the tier").click()
    page.wait_for_url("**/console/products")
    page.get_by_role("link", name="Add a tier to Studio").click()
    page.get_by_label("Code").fill("solo")
    page.get_by_label("Name", exact=True).fill("Solo")
    page.get_by_label("Seats (machines at once)").fill("1")
    page.get_by_label("After expiry").select_option("fallback")
    page.get_by_role("button", name="Create the tier").click()
    page.wait_for_url("**/console/products")
    assert page.get_by_role("rowheader", name="Solo solo").is_visible()
    check_page(page, "console-products")

    # A customer organization, then its license.
    page.get_by_role("link", name="Organizations").click()
    page.get_by_label("Organization name").fill("Initech")
    page.get_by_role("button", name="Add the organization").click()
    page.get_by_role("link", name="Organizations").click()
    page.get_by_label("Name contains").fill("init")
    page.get_by_role("button", name="Search").click()
    check_page(page, "console-organizations")
    page.get_by_role("link", name="Initech").click()
    check_page(page, "console-organization")
    organization_id = page.locator("main p.mono").inner_text().strip()
    page.get_by_role("link", name="Issue a license to this organization").click()
    assert page.get_by_label("Organization").input_value() == organization_id
    page.get_by_label("Product and tier").select_option("studio/pro")
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

    # A change of tier, confirmed: same key, same machine, the new tier's seats.
    page.get_by_label("Move to tier").select_option("solo")
    page.get_by_role("button", name="Change the tier").click()  # the confirmation is accepted
    page.wait_for_url(license_url)
    assert "studio / solo" in page.content() and "1 of 1" in page.content()
    assert page.get_by_role("cell", name="design-laptop").is_visible()
    validated = httpx.post(
        f"{live.base_url}/api/v1/licenses/validate",
        json={"license_key": key, "product": "studio"},
    ).json()
    assert validated["code"] == "VALID" and validated["license"]["tier"] == "solo"

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
    # A keyless trial, started by a product on a machine, for the trials page.
    trial_tier = {"code": "trial", "name": "Trial", "max_activations": 1, "duration_days": 14}
    trial_tier |= {"is_trial": True, "self_serve_trials": True}
    assert api.post("/api/v1/products/studio/tiers", json=trial_tier).is_success
    started = httpx.post(
        f"{live.base_url}/api/v1/trials",
        json={"product": "studio", "fingerprint": uuid.uuid4().hex, "name": "trial-laptop"},
    )
    assert started.status_code == 201, started.text
    for name, shot in (
        ("Trials", "console-trials"),
        ("Signing keys", "console-keys"),
        ("Audit log", "console-audit"),
    ):
        page.get_by_role("link", name=name).click()
        check_page(page, shot)
        if name == "Trials":
            assert page.get_by_role("cell", name=re.compile("trial-laptop")).is_visible()
    # Newest first: the revocation comes before the issue.
    content = page.content()
    assert content.index("license.revoke") < content.index("license.issue")

    page.get_by_role("link", name="Overview").click()
    check_page(page, "console-overview")
    page.get_by_role("link", name="Account").click()
    check_page(page)

    webhook_pages(page, check_page)
    named_users(page, api, organization_id, check_page)
    a_product_renamed(page, check_page)
    csrf_is_checked(context, api, organization_id)
    names_render_as_text(page, live, api, check_page)
    signing_out_in_one_tab_ends_the_other(context, page)


def webhook_pages(page: Any, check_page: Callable) -> None:
    """An endpoint added from the console (its secret shown once), a test event delivered to
    a receiver on this machine, and the deliveries listed."""
    with Receiver() as receiver:
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_label("URL (https://)").fill(f"{receiver.url}/licentia")
        page.get_by_label("license.*").check()
        page.get_by_label("Description").fill("Billing")
        check_page(page, "console-webhooks")
        page.get_by_role("button", name="Add the endpoint").click()
        secret = page.locator("#webhook-secret").inner_text().strip()
        assert secret.startswith("whsec_")
        assert page.get_by_role("button", name="Copy the secret").is_visible()
        check_page(page, "console-webhook-secret")
        page.get_by_role("link", name="Open the endpoint").click()
        assert secret not in page.content()
        page.get_by_role("button", name="Send a test event").click()
        assert page.get_by_text("The test event was delivered (HTTP 200)").is_visible()
        assert receiver.of_type("webhook.test")
        assert page.get_by_role("button", name=re.compile("Redeliver")).count() == 1
        check_page(page, "console-webhook")


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


def named_users(page: Any, api: httpx.Client, organization_id: str, check_page: Callable) -> None:
    """A license of a named-user tier, issued picking the organization by name; a member
    assigned, a second refused (the service's USER_LIMIT on the page), the first unassigned."""
    team = {"code": "team", "name": "Team", "max_activations": 10}
    team |= {"seat_kind": "user", "max_users": 1, "machines_per_user": 2}
    assert api.post("/api/v1/products/studio/tiers", json=team).is_success
    for name, email in (("Ada Lovelace", "ada@initech.test"), ("Alan Turing", "alan@initech.test")):
        person = {"email": email, "full_name": name, "role": "member"}
        person |= {"password": CUSTOMER_PASSWORD, "organization_id": organization_id}
        assert api.post("/api/v1/users", json=person).status_code == 201

    page.get_by_role("link", name="Licenses", exact=True).click()
    page.get_by_role("link", name="Issue a license").click()
    page.get_by_label("Organization").select_option(label="Initech")
    page.get_by_label("Product and tier").select_option("studio/team")
    page.get_by_role("button", name="Issue").click()
    page.get_by_role("link", name="Open the license").click()
    license_url = page.url
    expect(page.get_by_role("link", name="Initech")).to_be_visible()

    member = page.get_by_label("Member to assign")
    member.select_option(label="Ada Lovelace (ada@initech.test)")
    page.get_by_role("button", name="Assign", exact=True).click()
    page.wait_for_url(license_url)
    expect(page.get_by_role("cell", name="Ada Lovelace", exact=True)).to_be_visible()
    expect(page.get_by_text("1 of 1 users assigned")).to_be_visible()
    page.get_by_role("heading", name="Named users").scroll_into_view_if_needed()
    check_page(page, "console-license-users")

    member.select_option(label="Alan Turing (alan@initech.test)")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("USER_LIMIT")
    assert page.get_by_role("cell", name="Alan Turing", exact=True).count() == 0
    check_page(page)

    page.get_by_role("button", name="Unassign Ada Lovelace").click()  # confirmed
    page.wait_for_url(license_url)
    expect(page.get_by_text("No user is assigned to this license.")).to_be_visible()
    expect(page.get_by_text("0 of 1 users assigned")).to_be_visible()


def a_product_renamed(page: Any, check_page: Callable) -> None:
    """The product's name changes (htmx posts the form; its code stays)."""
    page.get_by_role("link", name="Products").click()
    page.get_by_label("Name of studio").fill("Studio Suite")
    page.get_by_role("button", name="Rename studio").click()
    expect(page.get_by_role("heading", name="Studio Suite studio")).to_be_visible()
    check_page(page)


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

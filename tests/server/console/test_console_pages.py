"""The console in process (TestClient): sign-in, sessions, CSRF, headers, roles, and the
license actions going through the API's services. The browser suite (tests/browser) drives
the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import factories
import psycopg
import pytest
from litestar.testing import TestClient
from support import STAFF_PASSWORD, TestDatabase, console_sign_in, csrf_field, make_staff

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")


def test_pages_need_a_session(client: TestClient) -> None:
    response = client.get("/console/licenses", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


def test_wrong_password_is_refused_on_the_form(client: TestClient, settings: Settings) -> None:
    make_staff(settings, "ops@vendor.test", "admin")
    token = csrf_field(client.get("/console/login").text)
    response = client.post(
        "/console/login",
        data={"email": "ops@vendor.test", "password": "not it at all", "_csrf_token": token},
    )
    assert response.status_code == 401
    assert "Invalid e-mail or password" in response.text
    assert "licentia_console=" not in response.headers.get("set-cookie", "")


def test_session_cookie_and_security_headers(client: TestClient, settings: Settings) -> None:
    make_staff(settings, "ops@vendor.test", "admin")
    page = client.get("/console/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    response = client.post(
        "/console/login",
        data={
            "email": "ops@vendor.test",
            "password": STAFF_PASSWORD,
            "_csrf_token": csrf_field(page.text),
        },
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https adds it


def test_cookies_are_secure_over_https(settings: Settings, signing_key: str) -> None:
    from server.app import create_app

    with TestClient(create_app(settings), base_url="https://console.local") as client:
        cookie = client.get("/console/login").headers["set-cookie"]
    assert "Secure" in cookie.split("; ")


def test_a_form_without_the_csrf_token_is_refused(client: TestClient, settings: Settings) -> None:
    make_staff(settings, "ops@vendor.test", "admin")
    client.get("/console/login")
    response = client.post(
        "/console/login", data={"email": "ops@vendor.test", "password": STAFF_PASSWORD}
    )
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert "licentia_console=" not in response.headers.get("set-cookie", "")


def test_issue_shows_the_key_once(client: TestClient, settings: Settings, make_license) -> None:
    made = make_license()  # the catalog and an organization
    token = console_sign_in(client, settings, "admin")
    form = client.get(f"/console/licenses/new?organization={made.organization_id}")
    assert f"{made.product}/{made.tier}" in form.text
    issued = client.post(
        "/console/licenses",
        data={
            "organization_id": str(made.organization_id),
            "plan": f"{made.product}/{made.tier}",
            "metadata": '{"order": "INV-7"}',
            "_csrf_token": token,
        },
    )
    assert issued.status_code == 200, issued.text
    key = re.search(r'id="license-key" class="key">([^<]+)<', issued.text).group(1)
    assert key.startswith("LK-")
    license_id = re.search(r'href="/console/licenses/([0-9a-f-]{36})"', issued.text).group(1)
    detail = client.get(f"/console/licenses/{license_id}")
    assert detail.status_code == 200
    assert key not in detail.text and key[:8] in detail.text
    assert "INV-7" in detail.text and "license.issue" in detail.text


def test_viewer_reads_but_cannot_act(client: TestClient, settings: Settings, make_license) -> None:
    made = make_license()
    token = console_sign_in(client, settings, "viewer")
    page = client.get(f"/console/licenses/{made.id}")
    assert page.status_code == 200
    assert "Suspend" not in page.text and "Revoke" not in page.text
    refused = client.post(f"/console/licenses/{made.id}/revoke", data={"_csrf_token": token})
    assert refused.status_code == 403
    assert "INSUFFICIENT_ROLE" in refused.text
    assert client.get("/console/licenses/new").status_code == 403


def test_support_suspends_but_cannot_revoke(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license()
    token = console_sign_in(client, settings, "support")
    page = client.get(f"/console/licenses/{made.id}")
    assert "Suspend" in page.text and "Revoke" not in page.text
    suspended = client.post(f"/console/licenses/{made.id}/suspend", data={"_csrf_token": token})
    assert suspended.status_code == 200 and "suspended" in suspended.text
    refused = client.post(f"/console/licenses/{made.id}/revoke", data={"_csrf_token": token})
    assert refused.status_code == 403
    reinstated = client.post(f"/console/licenses/{made.id}/reinstate", data={"_csrf_token": token})
    assert reinstated.status_code == 200 and "Suspend" in reinstated.text


def test_a_refused_transition_is_the_services_error(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license(status="revoked")
    token = console_sign_in(client, settings, "admin")
    response = client.post(f"/console/licenses/{made.id}/suspend", data={"_csrf_token": token})
    assert response.status_code == 409
    assert "LICENSE_REVOKED" in response.text or "ALREADY_REVOKED" in response.text


def test_logout_ends_the_session_everywhere(client: TestClient, settings: Settings) -> None:
    token = console_sign_in(client, settings, "admin")
    cookie = client.cookies.get("licentia_console")
    assert client.get("/console").status_code == 200
    client.post("/console/logout", data={"_csrf_token": token}, follow_redirects=False)
    # Another browser holding the same cookie (or another worker) is signed out too.
    client.cookies.set("licentia_console", cookie, path="/console")
    response = client.get("/console", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/console/login"


def test_search_filters_licenses(client: TestClient, settings: Settings, make_license) -> None:
    first = make_license()
    second = make_license(organization_id=first.organization_id, status="suspended")
    console_sign_in(client, settings, "viewer")
    prefix = second.key[:8]
    found = client.get("/console/licenses", params={"prefix": prefix})
    assert prefix in found.text and first.key[:8] not in found.text
    suspended = client.get("/console/licenses", params={"status": "suspended"})
    assert prefix in suspended.text and first.key[:8] not in suspended.text
    partial = client.get(
        "/console/licenses", params={"prefix": prefix}, headers={"HX-Request": "true"}
    )
    assert "<html" not in partial.text and prefix in partial.text


def test_overview_figures(
    client: TestClient, settings: Settings, database: TestDatabase, make_license
) -> None:
    made = make_license(max_activations=3)
    make_license(organization_id=made.organization_id, status="suspended")
    activated = client.post(
        "/api/v1/licenses/activate",
        json={"license_key": made.key, "product": made.product, "fingerprint": "m-1"},
    )
    assert activated.status_code == 201
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO validation_counts (hour, count) VALUES (date_trunc('hour', now()), 7)"
        )
    console_sign_in(client, settings, "viewer")
    page = client.get("/console").text
    live = re.search(r'id="live-h">Activations live now</h2>\s*<p class="figure">(\d+)<', page)
    assert live and live.group(1) == "1"
    assert "highest day: 1." in page and "busiest hour: 7." in page
    assert re.search(r"status-suspended\">suspended</span>\s*</td><td>1<", page)


def test_terms_renewal_and_a_freed_seat(
    client: TestClient, settings: Settings, make_license
) -> None:
    from datetime import UTC, datetime, timedelta

    made = make_license(max_activations=2, expires_at=datetime.now(UTC) + timedelta(days=10))
    seat = client.post(
        "/api/v1/licenses/activate",
        json={"license_key": made.key, "product": made.product, "fingerprint": "m-1"},
    ).json()
    token = console_sign_in(client, settings, "admin")
    base = f"/console/licenses/{made.id}"
    changed = client.post(f"{base}/terms", data={"max_activations": "4", "_csrf_token": token})
    assert "1 of 4" in changed.text
    bad = client.post(f"{base}/terms", data={"features": "{not json", "_csrf_token": token})
    assert bad.status_code == 422 and "VALIDATION_ERROR" in bad.text
    renewed = client.post(f"{base}/renew", data={"duration_days": "30", "_csrf_token": token})
    expected = (datetime.now(UTC) + timedelta(days=40)).strftime("%Y-%m-%d")
    assert expected in renewed.text
    freed = client.post(
        f"{base}/activations/{seat['activation_id']}/deactivate", data={"_csrf_token": token}
    )
    assert "0 of 4" in freed.text and "freed" in freed.text


def test_a_forged_forwarded_proto_does_not_make_cookies_secure(client: TestClient) -> None:
    page = client.get("/console/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in page.headers["set-cookie"]


def test_a_new_password_ends_every_session(client: TestClient, settings: Settings) -> None:
    token = console_sign_in(client, settings, "support")
    cookie = client.cookies.get("licentia_console")
    wrong = client.post(
        "/console/account/password",
        data={"current_password": "not it", "new_password": "x" * 16, "_csrf_token": token},
    )
    assert wrong.status_code == 403 and "WRONG_PASSWORD" in wrong.text
    changed = client.post(
        "/console/account/password",
        data={
            "current_password": STAFF_PASSWORD,
            "new_password": "another long passphrase",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/console/login"
    client.cookies.set("licentia_console", cookie, path="/console")
    assert client.get("/console", follow_redirects=False).status_code == 303
    again = client.post(
        "/console/login",
        data={
            "email": "support@vendor.test",
            "password": "another long passphrase",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert client.get("/console/account").status_code == 200


def test_tiers_keys_and_the_audit_log(client: TestClient, settings: Settings, make_license) -> None:
    made = make_license(max_activations=5)
    token = console_sign_in(client, settings, "admin")
    page = client.get(f"/console/products/{made.product}/tiers/{made.tier}").text
    assert 'name="max_activations" required value="5"' in page
    saved = client.post(
        f"/console/products/{made.product}/tiers/{made.tier}",
        data={
            "max_activations": "9",
            "offline_lease_days": "3",
            "lease_grace_days": "2",
            "max_deactivations_per_day": "4",
            "features": '{"export": true}',
            "_csrf_token": token,
        },
    )
    assert saved.status_code == 200 and "<td>9</td>" in saved.text
    refused = client.post(
        f"/console/products/{made.product}/tiers/{made.tier}",
        data={"offline_lease_days": "0", "_csrf_token": token},
    )
    assert refused.status_code == 422

    before = client.get("/console/keys").text.count("<td>active</td>")
    assert before == 1
    rotated = client.post("/console/keys/rotate", data={"_csrf_token": token})
    assert rotated.status_code == 200
    assert rotated.text.count("<td>active</td>") == 1
    assert rotated.text.count("<td>retired</td>") == 1

    audit = client.get("/console/audit", params={"action": "tier.update"}).text
    assert "tier.update" in audit and "key.rotate" not in audit
    assert "key.rotate" in client.get("/console/audit").text


def test_viewer_sees_tiers_read_only(client: TestClient, settings: Settings, make_license) -> None:
    made = make_license()
    token = console_sign_in(client, settings, "viewer")
    page = client.get("/console/products").text
    assert "<input" not in page.split("<main")[1].split("</main>")[0]
    refused = client.post(
        f"/console/products/{made.product}/tiers/{made.tier}",
        data={"max_activations": "9", "_csrf_token": token},
    )
    assert refused.status_code == 403
    assert "Rotate" not in client.get("/console/keys").text
    assert client.post("/console/keys/rotate", data={"_csrf_token": token}).status_code == 403


def test_sign_in_is_limited_like_the_api_login(settings: Settings, signing_key: str) -> None:
    import msgspec

    from server.app import create_app

    strict = msgspec.structs.replace(settings, login_failures_per_address_email=2)
    make_staff(settings, "ops@vendor.test", "admin")
    with TestClient(create_app(strict)) as client:
        token = csrf_field(client.get("/console/login").text)
        attempt = {"email": "ops@vendor.test", "password": "wrong guess", "_csrf_token": token}
        statuses = [client.post("/console/login", data=attempt).status_code for _ in range(3)]
        right = {**attempt, "password": STAFF_PASSWORD}
        refused = client.post("/console/login", data=right, follow_redirects=False)
    assert statuses == [401, 401, 429]
    assert refused.status_code == 429 and "Too many failed logins" in refused.text


def test_lists_page_on(client: TestClient, settings: Settings, database: TestDatabase) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        for n in range(1, 53):
            factories.organization(
                conn, f"Org {n:03d}", created_at=now - timedelta(minutes=100 - n)
            )
    console_sign_in(client, settings, "viewer")
    first = client.get("/console/organizations", params={"q": "org"}).text
    assert "Org 001" in first and "Org 050" in first and "Org 051" not in first
    link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    assert link.startswith("/console/organizations?q=org&cursor=")
    second = client.get(link).text
    assert "Org 051" in second and "Org 052" in second and "Org 050" not in second
    assert 'rel="next"' not in second

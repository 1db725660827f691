"""The console's pages for the catalog (products and tiers made and edited), change of tier,
keyless trials, webhook endpoints and the audit log's order: each goes through the API's
service, with the role checks, CSRF and escaping of the other pages."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import msgspec
import pytest
from litestar.testing import TestClient
from support import Receiver, console_sign_in

from server.settings import Settings

pytestmark = pytest.mark.usefixtures("cheap_argon2")

XSS = "<script>window.__pwned = 1</script>"
ESCAPED = "&lt;script&gt;window.__pwned = 1&lt;/script&gt;"


def main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def events(html: str) -> str:
    """The audit page's table of events (its filters name organizations too)."""
    return main(html).split("<table>", 1)[1]


TIER_FORM = {
    "code": "pro",
    "name": "Pro",
    "max_activations": "2",
    "duration_days": "",
    "offline_lease_days": "7",
    "lease_grace_days": "3",
    "max_deactivations_per_day": "4",
    "expiry_notice_days": "10",
    "expiry_behavior": "fallback",
    "features": '{"export": true}',
}


# --- products and tiers ------------------------------------------------------------------------


def test_an_admin_creates_a_product_and_a_tier_from_nothing(
    client: TestClient, settings: Settings
) -> None:
    token = console_sign_in(client, settings, "admin")
    empty = client.get("/console/products").text
    assert "No products yet" in empty and "Create the product" in empty
    assert "Create a product and a tier" in client.get("/console/licenses/new").text

    made = client.post(
        "/console/products",
        data={"code": "studio", "name": f"Studio {XSS}", "_csrf_token": token},
        follow_redirects=False,
    )
    assert made.status_code == 303
    assert made.headers["location"] == "/console/products/studio/new-tier"
    form = client.get("/console/products/studio/new-tier")
    assert form.status_code == 200 and ESCAPED in form.text and XSS not in form.text

    tier = client.post("/console/products/studio/tiers", data={**TIER_FORM, "_csrf_token": token})
    assert tier.status_code == 200, tier.text
    assert "perpetual fallback" in tier.text and "perpetual" in tier.text
    assert ESCAPED in tier.text and XSS not in tier.text
    edit = client.get("/console/products/studio/tiers/pro").text
    assert 'name="max_activations" required value="2"' in edit
    assert 'value="fallback" selected' in edit
    issue_form = client.get("/console/licenses/new").text
    assert 'value="studio/pro"' in issue_form and "Create a product and a tier" not in issue_form

    again = client.post(
        "/console/products", data={"code": "studio", "name": "Again", "_csrf_token": token}
    )
    assert again.status_code == 409 and "PRODUCT_EXISTS" in again.text
    bad = client.post(
        "/console/products", data={"code": "Bad Code", "name": "X", "_csrf_token": token}
    )
    assert bad.status_code == 422 and "VALIDATION_ERROR" in bad.text
    # An htmx form gets the error in the page's message area, not a new page.
    inline = client.post(
        "/console/products",
        data={"code": "studio", "name": "Again", "_csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert inline.status_code == 409 and inline.headers["hx-retarget"] == "#messages"
    assert "<html" not in inline.text and "PRODUCT_EXISTS" in inline.text
    audit = client.get("/console/audit").text
    assert "product.create" in audit and "tier.create" in audit


def test_an_admin_renames_a_product(client: TestClient, settings: Settings, make_license) -> None:
    made = make_license()
    token = console_sign_in(client, settings, "admin")
    url = f"/console/products/{made.product}"
    form = client.get("/console/products").text
    assert f'action="{url}"' in form and f'value="{made.product}"' in form
    renamed = client.post(
        url, data={"name": f"Studio {XSS}", "_csrf_token": token}, follow_redirects=False
    )
    assert renamed.status_code == 303 and renamed.headers["location"] == "/console/products"
    page = client.get("/console/products").text
    assert f"<h2>Studio {ESCAPED} " in page and f'value="Studio {ESCAPED}"' in page
    assert XSS not in page
    # Through the API's service: the product (code unchanged) and its audit event.
    assert f"Studio {ESCAPED}" in client.get("/console/licenses/new").text
    assert "product.update" in client.get("/console/audit").text
    empty = client.post(url, data={"name": "  ", "_csrf_token": token})
    assert empty.status_code == 422 and "VALIDATION_ERROR" in empty.text
    too_long = client.post(url, data={"name": "x" * 201, "_csrf_token": token})
    assert too_long.status_code == 422 and "VALIDATION_ERROR" in too_long.text
    missing = client.post("/console/products/nope", data={"name": "X", "_csrf_token": token})
    assert missing.status_code == 404 and "PRODUCT_NOT_FOUND" in missing.text
    # With htmx, a refusal goes to the page's message area and success reloads the page.
    inline = client.post(
        url, data={"name": "", "_csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert inline.status_code == 422 and inline.headers["hx-retarget"] == "#messages"
    again = client.post(
        url, data={"name": "Studio", "_csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert again.headers["hx-redirect"] == "/console/products"
    assert "<h2>Studio " in client.get("/console/products").text


def test_every_tier_field_is_editable_through_the_service(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license(max_activations=5)
    token = console_sign_in(client, settings, "admin")
    url = f"/console/products/{made.product}/tiers/{made.tier}"
    form = {k: v for k, v in TIER_FORM.items() if k != "code"}
    saved = client.post(
        url,
        data={
            **form,
            "name": "Trial",
            "duration_days": "30",
            "is_trial": "true",
            "self_serve_trials": "true",
            "expiry_behavior": "restrict",
            "_csrf_token": token,
        },
    )
    assert saved.status_code == 200, saved.text
    assert "keyless machine trials" in saved.text
    page = client.get(url).text
    assert 'name="is_trial" value="true" checked' in page
    assert 'name="self_serve_trials" value="true" checked' in page
    assert 'name="duration_days" value="30"' in page
    assert 'name="expiry_notice_days" value="10"' in page
    assert 'name="max_deactivations_per_day" value="4"' in page
    # The service's own rule: keyless trials need a trial tier (unticking is_trial).
    refused = client.post(
        url, data={**form, "duration_days": "30", "self_serve_trials": "true", "_csrf_token": token}
    )
    assert refused.status_code == 422 and "TRIAL_TIER_INCOMPLETE" in refused.text
    # The form is the whole tier: unticked boxes and an empty duration clear them.
    cleared = client.post(url, data={**form, "_csrf_token": token})
    assert cleared.status_code == 200
    page = client.get(url).text
    assert "checked" not in page and 'name="duration_days" value=""' in page
    wrong = client.post(url, data={**form, "offline_lease_days": "0", "_csrf_token": token})
    assert wrong.status_code == 422


def test_viewer_and_support_cannot_make_products_tiers_or_endpoints(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license()
    for role in ("viewer", "support"):
        client.cookies.clear()
        token = console_sign_in(client, settings, role)
        page = client.get("/console/products").text
        assert "<input" not in main(page) and "Edit" not in main(page)
        assert "Webhooks" not in page
        posts = {
            "/console/products": {"code": "other", "name": "Other"},
            f"/console/products/{made.product}": {"name": "Renamed"},
            f"/console/products/{made.product}/tiers": TIER_FORM,
            f"/console/products/{made.product}/tiers/{made.tier}": {"max_activations": "9"},
            f"/console/licenses/{made.id}/change-tier": {"tier": made.tier},
            "/console/webhooks": {"url": "https://hooks.example.com/x"},
            "/console/organizations": {"name": "Made by " + role},
        }
        for path, data in posts.items():
            refused = client.post(path, data={**data, "_csrf_token": token})
            assert refused.status_code == 403, (role, path)
            assert "INSUFFICIENT_ROLE" in refused.text
        for path in (
            f"/console/products/{made.product}/new-tier",
            f"/console/products/{made.product}/tiers/{made.tier}",
            "/console/webhooks",
        ):
            assert client.get(path).status_code == 403, (role, path)
        assert "Change of tier" not in client.get(f"/console/licenses/{made.id}").text
        assert "Renamed" not in client.get("/console/products").text


def test_the_new_forms_refuse_a_post_without_the_csrf_token(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license()
    console_sign_in(client, settings, "admin")
    for path, data in {
        "/console/products": {"code": "other", "name": "Other"},
        f"/console/products/{made.product}": {"name": "Renamed"},
        f"/console/products/{made.product}/tiers": TIER_FORM,
        f"/console/licenses/{made.id}/change-tier": {"tier": made.tier},
        "/console/webhooks": {"url": "https://hooks.example.com/x"},
        "/console/organizations": {"name": "Initech"},
    }.items():
        assert client.post(path, data=data).status_code == 403, path
    products = client.get("/console/products").text
    assert "other" not in products and "Renamed" not in products


def test_an_admin_adds_an_organization(client: TestClient, settings: Settings) -> None:
    token = console_sign_in(client, settings, "admin")
    made = client.post("/console/organizations", data={"name": XSS, "_csrf_token": token})
    assert made.status_code == 200
    assert ESCAPED in made.text and XSS not in made.text
    assert "Issue a license to this organization" in made.text
    empty = client.post("/console/organizations", data={"name": "", "_csrf_token": token})
    assert empty.status_code == 422


# --- a license: change of tier, trial, fallback ---------------------------------------------------


def test_change_of_tier_with_seats_in_use(
    client: TestClient, settings: Settings, make_license
) -> None:
    made = make_license(max_activations=3)
    make_license(tier="solo", max_activations=1, expiry_behavior="fallback")
    for fp in ("m-1", "m-2"):
        assert client.post(
            "/api/v1/licenses/activate",
            json={"license_key": made.key, "product": made.product, "fingerprint": fp},
        ).is_success
    token = console_sign_in(client, settings, "admin")
    base = f"/console/licenses/{made.id}"
    page = client.get(base).text
    assert "Change of tier" in page and 'value="solo"' in page and "data-confirm" in page

    refused = client.post(f"{base}/change-tier", data={"tier": "solo", "_csrf_token": token})
    assert refused.status_code == 409 and "SEATS_IN_USE" in refused.text
    unknown = client.post(f"{base}/change-tier", data={"tier": "nope", "_csrf_token": token})
    assert unknown.status_code == 422 and "UNKNOWN_TIER" in unknown.text

    changed = client.post(
        f"{base}/change-tier",
        data={"tier": "solo", "release": "least_recently_seen", "_csrf_token": token},
    )
    assert changed.status_code == 200, changed.text
    assert f"{made.product} / solo" in changed.text and "1 of 1" in changed.text
    assert changed.text.count("<td>freed ") == 1 and "license.change_tier" in changed.text
    # A perpetual license of a fallback tier has no "updates until" to show.
    assert "Updates until" not in changed.text


def test_a_dated_fallback_license_shows_updates_until_and_a_trial_says_so(
    client: TestClient, settings: Settings, make_license
) -> None:
    from datetime import UTC, datetime, timedelta

    ends = datetime.now(UTC) + timedelta(days=20)
    fallback = make_license(expiry_behavior="fallback", expires_at=ends)
    trial = make_license(product="trialware", tier="trial", is_trial=True, duration_days=14)
    console_sign_in(client, settings, "viewer")
    page = client.get(f"/console/licenses/{fallback.id}").text
    assert "Updates until" in page and ends.strftime("%Y-%m-%d") in page
    assert 'class="badge trial"' not in page
    assert 'class="badge trial"' in client.get(f"/console/licenses/{trial.id}").text


# --- trials --------------------------------------------------------------------------------------


def test_the_trials_page_lists_with_counts(
    client: TestClient, settings: Settings, make_license
) -> None:
    make_license(
        product="trialware", tier="trial", is_trial=True, self_serve_trials=True, duration_days=14
    )
    for fp, name in (("fp-1", XSS), ("fp-2", "laptop")):
        started = client.post(
            "/api/v1/trials", json={"product": "trialware", "fingerprint": fp, "name": name}
        )
        assert started.status_code == 201, started.text
    console_sign_in(client, settings, "viewer")
    page = client.get("/console/trials").text
    assert re.search(r'id="t-running">Running</h2><p class="figure">2<', page)
    assert "laptop" in page and ESCAPED in page and XSS not in page
    assert "none yet" not in page and "0.0%" in page
    assert "laptop" in client.get("/console/trials", params={"status": "running"}).text
    assert "laptop" not in client.get("/console/trials", params={"status": "ended"}).text
    assert "laptop" not in client.get("/console/trials", params={"product": "other"}).text
    assert client.get("/console/trials", params={"status": "nope"}).status_code == 422


# --- webhooks ------------------------------------------------------------------------------------


@pytest.fixture
def local_client(settings: Settings, signing_key: str) -> Iterator[TestClient]:
    """The app allowing http:// and loopback webhook URLs (a receiver on this machine)."""
    from server.app import create_app

    local = msgspec.structs.replace(
        settings, webhook_allow_insecure=True, webhook_allow_private=True
    )
    with TestClient(create_app(local), raise_server_exceptions=False) as test_client:
        yield test_client


def test_webhook_endpoints_from_the_console(
    local_client: TestClient, settings: Settings, receiver: Receiver, make_license
) -> None:
    client = local_client
    made = make_license()
    token = console_sign_in(client, settings, "admin")
    assert "No endpoint yet" in client.get("/console/webhooks").text

    created = client.post(
        "/console/webhooks",
        data={
            "url": f"{receiver.url}/hook",
            "events": ["license.*", "activation.created"],
            "organization_id": str(made.organization_id),
            "description": XSS,
            "_csrf_token": token,
        },
    )
    assert created.status_code == 200, created.text
    secret = re.search(r'id="webhook-secret" class="key">([^<]+)<', created.text).group(1)
    assert secret.startswith("whsec_") and "Copy the secret" in created.text
    endpoint_url = re.search(r'href="(/console/webhooks/[0-9a-f-]{36})"', created.text).group(1)
    page = client.get(endpoint_url).text
    assert secret not in page  # never again
    assert ESCAPED in page and XSS not in page
    assert 'value="license.*" checked' in page and 'value="activation.created" checked' in page
    assert "No deliveries yet" in page

    tested = client.post(f"{endpoint_url}/test", data={"_csrf_token": token})
    assert tested.status_code == 200
    assert "The test event was delivered (HTTP 200)" in tested.text
    assert receiver.of_type("webhook.test")
    delivery = re.search(r'deliveries/(\d+)/retry"', tested.text).group(1)
    retried = client.post(
        f"{endpoint_url}/deliveries/{delivery}/retry", data={"_csrf_token": token}
    )
    assert retried.status_code == 200 and "next attempt" in retried.text

    edited = client.post(
        endpoint_url,
        data={"url": f"{receiver.url}/other", "description": "billing", "_csrf_token": token},
    )
    assert edited.status_code == 200
    assert f"{receiver.url}/other" in edited.text and "every event" in edited.text
    bad = client.post(endpoint_url, data={"url": "ftp://nowhere.example", "_csrf_token": token})
    assert bad.status_code == 422

    disabled = client.post(f"{endpoint_url}/disable", data={"_csrf_token": token})
    assert "disabled (by staff)" in disabled.text
    enabled = client.post(f"{endpoint_url}/enable", data={"_csrf_token": token})
    assert "Disable" in enabled.text

    rotated = client.post(f"{endpoint_url}/rotate-secret", data={"_csrf_token": token})
    new_secret = re.search(r'id="webhook-secret" class="key">([^<]+)<', rotated.text).group(1)
    assert new_secret.startswith("whsec_") and new_secret != secret
    assert "For 24 hours" in rotated.text

    removed = client.post(f"{endpoint_url}/delete", data={"_csrf_token": token})
    assert removed.status_code == 200 and "No endpoint yet" in removed.text
    assert client.get(endpoint_url).status_code == 404
    actions = client.get("/console/audit", params={"target": endpoint_url.rsplit("/", 1)[1]}).text
    for action in ("create", "test", "update", "rotate_secret", "delete"):
        assert f"webhook_endpoint.{action}" in actions


def test_a_webhook_endpoint_picks_its_organization_by_name(
    local_client: TestClient, settings: Settings, make_license
) -> None:
    client = local_client
    made = make_license()  # organization "Acme"
    token = console_sign_in(client, settings, "admin")
    form = client.get("/console/webhooks").text
    select = re.search(r'<select name="organization_id">(.*?)</select>', form, re.S)
    assert select, form
    options = re.findall(r'<option value="([^"]*)">([^<]*)</option>', select.group(1))
    assert options == [
        ("", "Every organization (and deployment-wide events)"),
        (str(made.organization_id), "Acme"),
    ]
    for value, code in (("nope", "VALIDATION_ERROR"), (str(uuid.uuid4()), "UNKNOWN_ORGANIZATION")):
        refused = client.post(
            "/console/webhooks",
            data={"url": "http://127.0.0.1:9/hook", "organization_id": value, "_csrf_token": token},
        )
        assert refused.status_code == 422 and code in refused.text, value
    created = client.post(
        "/console/webhooks",
        data={
            "url": "http://127.0.0.1:9/hook",
            "organization_id": str(made.organization_id),
            "_csrf_token": token,
        },
    )
    assert created.status_code == 200, created.text
    listed = client.get("/console/webhooks").text
    table = main(listed).split("</table>", 1)[0]
    assert f'<a href="/console/organizations/{made.organization_id}">Acme</a>' in table
    endpoint_id = re.search(r'href="/console/webhooks/([0-9a-f-]{36})"', table)
    assert endpoint_id, table
    page = client.get(f"/console/webhooks/{endpoint_id.group(1)}").text
    assert f'<a href="/console/organizations/{made.organization_id}">Acme</a>' in page
    # From the organization's page, the form has it chosen.
    link = f"/console/webhooks?organization={made.organization_id}#add-endpoint"
    assert link in client.get(f"/console/organizations/{made.organization_id}").text
    prefilled = client.get(link.split("#")[0]).text
    assert f'<option value="{made.organization_id}" selected>Acme</option>' in prefilled


def test_webhook_urls_follow_the_api_rules(client: TestClient, settings: Settings) -> None:
    token = console_sign_in(client, settings, "admin")
    for url, code in (
        ("http://hooks.example.com/x", "WEBHOOK_URL_FORBIDDEN"),
        ("https://127.0.0.1/x", "WEBHOOK_URL_FORBIDDEN"),
    ):
        refused = client.post("/console/webhooks", data={"url": url, "_csrf_token": token})
        assert refused.status_code == 422 and code in refused.text, url
    unknown = client.post(
        "/console/webhooks",
        data={"url": "https://127.0.0.1/x", "events": "nope.thing", "_csrf_token": token},
    )
    assert unknown.status_code == 422


# --- the audit log -------------------------------------------------------------------------------


def test_the_audit_log_is_newest_first_and_pages_on(
    client: TestClient, settings: Settings, make_license
) -> None:
    token = console_sign_in(client, settings, "admin")
    for n in range(52):
        made = client.post(
            "/console/organizations", data={"name": f"Org {n:02d}", "_csrf_token": token}
        )
        assert made.status_code == 200
    first = client.get("/console/audit", params={"action": "organization.create"}).text
    names = re.findall(r"Org (\d\d)", events(first))  # not the organization picker's
    assert names == [f"{n:02d}" for n in range(51, 1, -1)]
    link = re.search(r'href="([^"]+)" rel="next"', first).group(1).replace("&amp;", "&")
    second = client.get(link).text
    assert re.findall(r"Org (\d\d)", events(second)) == ["01", "00"]
    assert 'rel="next"' not in second

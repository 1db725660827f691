"""LicenseClient without a Licentia server: only licentia-verifier, cryptography and pytest.

Tokens are signed by hand (see conftest.py). A tiny in-process ``http.server`` stands in for
the server where the shape of an answer or of a network failure matters; the behaviour
against the real server is tested in tests/verifier_client/.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from licentia_verifier import Expired, LicenseError, MalformedToken, UnknownKey, WrongMachine
from licentia_verifier.client import (
    ActivationRefused,
    LicenseClient,
    NotActivated,
    ServerUnavailable,
)

KEY = "LK-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG"
PRODUCT = "acme-ide"
FINGERPRINT = "machine-fingerprint-1"
NOW = 1_780_000_000
# The default test token: iat NOW-60, exp NOW+3600, so a third of the lease is 1220 s and the
# client checks in from NOW+2380 on; the verifier's leeway keeps it valid until NOW+3900.
DUE = NOW + 3000
PAST_LEASE = NOW + 3600 + 301


ACTIVATE = "/api/v1/licenses/activate"
CHECK_IN = "/api/v1/licenses/check-in"
DEACTIVATE = "/api/v1/licenses/deactivate"


def make_client(env, tmp_path, base_url: str = "http://127.0.0.1:9", **kwargs: Any):
    kwargs.setdefault("fingerprint", FINGERPRINT)
    kwargs.setdefault("timeout", 2.0)
    return LicenseClient(
        base_url, product=PRODUCT, verifier=env.verifier(), cache_dir=tmp_path / "cache", **kwargs
    )


def activation_answer(token: str, status_code: int = 201) -> tuple[int, dict[str, Any]]:
    return status_code, {
        "activation_id": "act_01",
        "token": token,
        "lease_expires_at": "2026-05-28T21:00:00Z",
        "activations_count": 1,
        "max_activations": 3,
    }


def seeded(env, tmp_path, base_url: str = "http://127.0.0.1:9", **kwargs: Any) -> LicenseClient:
    """A client whose cache holds the default token and KEY (installed like a response file)."""
    client = make_client(env, tmp_path, base_url, **kwargs)
    client.install(
        {"type": "activation_response", "token": env.activation()}, license_key=KEY, now=NOW
    )
    return client


def renewed_token(env, at: int, jti: str = "jti-2", **claims: Any) -> str:
    return env.activation(iat=at, nbf=at, exp=at + 3660, jti=jti, **claims)


def cached(client: LicenseClient) -> dict[str, Any]:
    with open(client.cache_path, encoding="utf-8") as handle:
        return json.load(handle)


def problem(code: str, detail: str = "refused") -> dict[str, Any]:
    return {"type": "about:blank", "title": "Refused", "detail": detail, "code": code}


# --- construction -------------------------------------------------------------------------


def test_constructor_refuses_bad_arguments(env, tmp_path):
    verifier = env.verifier()
    with pytest.raises(ValueError, match="product"):
        LicenseClient("http://x", product="other", verifier=verifier, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="http"):
        LicenseClient("ftp://x", product=PRODUCT, verifier=verifier, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="timeout"):
        LicenseClient("http://x", product=PRODUCT, verifier=verifier, cache_dir=tmp_path, timeout=0)
    with pytest.raises(ValueError, match="fingerprint"):
        LicenseClient(
            "http://x", product=PRODUCT, verifier=verifier, cache_dir=tmp_path, fingerprint=""
        )


def test_default_fingerprint_is_the_machine_fingerprint_salted_by_product(env, tmp_path):
    from licentia_verifier import FingerprintUnavailable, machine_fingerprint

    try:
        expected = machine_fingerprint(PRODUCT)
    except FingerprintUnavailable:
        pytest.skip("no machine id on this system")
    client = LicenseClient("http://x", product=PRODUCT, verifier=env.verifier(), cache_dir=tmp_path)
    assert client.fingerprint == expected


def test_errors_belong_to_the_license_error_family():
    refused = ActivationRefused("LICENSE_REVOKED", 403, "revoked by the vendor")
    assert isinstance(refused, LicenseError)
    assert (refused.code, refused.status, refused.detail) == (
        "LICENSE_REVOKED",
        403,
        "revoked by the vendor",
    )
    assert "LICENSE_REVOKED" in str(refused)
    assert issubclass(ServerUnavailable, LicenseError)
    assert issubclass(NotActivated, LicenseError)
    assert ServerUnavailable("x").code == "ServerUnavailable"


# --- activate -----------------------------------------------------------------------------


def test_activate_verifies_then_stores_token_and_key_privately(env, tmp_path, fake):
    fake.reply(ACTIVATE, *activation_answer(env.activation()))
    client = make_client(env, tmp_path, fake.base_url)

    license = client.activate(KEY, name="build box", platform="linux", now=NOW)

    assert license.activation_id == env.ACTIVATION_ID
    assert fake.requests == [
        {
            "path": ACTIVATE,
            "content_type": "application/json",
            "body": {
                "license_key": KEY,
                "product": PRODUCT,
                "fingerprint": FINGERPRINT,
                "name": "build box",
                "platform": "linux",
            },
        }
    ]
    state = cached(client)
    assert state["token"] == env.activation()
    assert state["license_key"] == KEY
    assert stat.S_IMODE(os.stat(client.cache_path).st_mode) == 0o600
    assert os.listdir(tmp_path / "cache") == [os.path.basename(client.cache_path)]
    # Afterwards, license() needs no network at all.
    fake.close()
    assert client.license(now=NOW) == license


def test_activate_leaves_out_unset_optional_fields(env, tmp_path, fake):
    fake.reply(ACTIVATE, *activation_answer(env.activation(), 200))
    make_client(env, tmp_path, fake.base_url).activate(f"  {KEY} ", now=NOW)
    assert fake.requests[0]["body"] == {
        "license_key": KEY,
        "product": PRODUCT,
        "fingerprint": FINGERPRINT,
    }


@pytest.mark.parametrize(
    ("make_token", "error"),
    [
        (lambda env: env.activation(fp=env.fp_hash("another machine")), WrongMachine),
        (lambda env: env.activation(iss="https://evil.test"), LicenseError),
        (lambda env: env.sign(env.header("activation+jwt", kid="nope"), {}), UnknownKey),
        (lambda env: "not-a-token", MalformedToken),
    ],
)
def test_activate_stores_nothing_that_does_not_verify(env, tmp_path, fake, make_token, error):
    fake.reply(ACTIVATE, *activation_answer(make_token(env)))
    client = make_client(env, tmp_path, fake.base_url)
    with pytest.raises(error):
        client.activate(KEY, now=NOW)
    assert not os.path.exists(client.cache_path)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "LICENSE_NOT_FOUND"),
        (403, "LICENSE_SUSPENDED"),
        (403, "LICENSE_REVOKED"),
        (403, "LICENSE_EXPIRED"),
        (422, "PRODUCT_MISMATCH"),
        (409, "ACTIVATION_LIMIT"),
    ],
)
def test_activate_refusal_carries_the_server_code(env, tmp_path, fake, status, code):
    fake.reply(ACTIVATE, status, problem(code, "no, sorry"))
    client = make_client(env, tmp_path, fake.base_url)
    with pytest.raises(ActivationRefused) as caught:
        client.activate(KEY, now=NOW)
    assert (caught.value.code, caught.value.status, caught.value.detail) == (
        code,
        status,
        "no, sorry",
    )
    assert not os.path.exists(client.cache_path)


def test_refusal_without_a_problem_body_gets_a_generic_code(env, tmp_path, fake):
    fake.reply(ACTIVATE, 400, b"<html>bad</html>")
    with pytest.raises(ActivationRefused) as caught:
        make_client(env, tmp_path, fake.base_url).activate(KEY, now=NOW)
    assert (caught.value.code, caught.value.status) == ("HTTP_400", 400)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (503, {"Retry-After": "7"}, 7.0),
        (429, {"Retry-After": "30"}, 30.0),
        (500, {}, None),
        (502, {"Retry-After": "soon"}, None),
    ],
)
def test_transient_answers_are_server_unavailable(
    env, tmp_path, fake, status, headers, retry_after
):
    fake.reply(ACTIVATE, status, problem("UNAVAILABLE"), **headers)
    with pytest.raises(ServerUnavailable) as caught:
        make_client(env, tmp_path, fake.base_url).activate(KEY, now=NOW)
    assert (caught.value.status, caught.value.retry_after) == (status, retry_after)


@pytest.mark.parametrize(
    "reply",
    [
        (200, b"not json", {}),
        (201, b"[1, 2]", {}),
        (201, {"activation_id": "act_01"}, {}),  # no token
        (307, None, {"Location": "http://127.0.0.1:1/elsewhere"}),  # never followed
    ],
)
def test_unexpected_answers_are_server_unavailable(env, tmp_path, fake, reply):
    fake.replies[ACTIVATE] = [reply]
    client = make_client(env, tmp_path, fake.base_url)
    with pytest.raises(ServerUnavailable):
        client.activate(KEY, now=NOW)
    assert not os.path.exists(client.cache_path)


def test_unreachable_server_is_server_unavailable(env, tmp_path, closed_url):
    with pytest.raises(ServerUnavailable, match="could not reach"):
        make_client(env, tmp_path, closed_url).activate(KEY, now=NOW)


def test_a_silent_server_does_not_hold_the_caller_past_the_timeout(env, tmp_path, fake):
    fake.behaviour = lambda handler: fake.release.wait(60)
    client = make_client(env, tmp_path, fake.base_url, timeout=0.3)
    with pytest.raises(ServerUnavailable, match=r"no answer|timed out"):
        client.activate(KEY, now=NOW)
    # The call returned while the server was still holding the request.
    assert not fake.release.is_set()


def test_a_trickling_server_does_not_hold_the_caller_past_the_timeout(env, tmp_path, fake):
    def trickle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "100000")
        handler.end_headers()
        while not fake.release.wait(0.05):  # a byte well within every socket timeout
            try:
                handler.wfile.write(b" ")
                handler.wfile.flush()
            except OSError:
                return

    fake.behaviour = trickle
    client = make_client(env, tmp_path, fake.base_url, timeout=0.5)
    with pytest.raises(ServerUnavailable, match="no answer"):
        client.activate(KEY, now=NOW)
    assert not fake.release.is_set()


# --- license(): offline, check-in, back-off -----------------------------------------------


def test_license_without_activation_raises_not_activated(env, tmp_path):
    client = make_client(env, tmp_path)
    with pytest.raises(NotActivated):
        client.license(now=NOW)
    os.makedirs(tmp_path / "cache")
    with open(client.cache_path, "w", encoding="utf-8") as handle:
        handle.write("{not json")
    with pytest.raises(NotActivated):
        client.license(now=NOW)


def test_license_with_a_fresh_lease_makes_no_request(env, tmp_path, fake):
    client = seeded(env, tmp_path, fake.base_url)
    for moment in (NOW, NOW + 1000, NOW + 2300):
        assert client.license(now=moment).token_id == "jti-1"
    assert fake.requests == []


def test_license_checks_in_when_a_third_of_the_lease_is_left(env, tmp_path, fake):
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, DUE), "lease_expires_at": "x"})
    client = seeded(env, tmp_path, fake.base_url)

    license = client.license(now=DUE)

    assert license.token_id == "jti-2"
    assert fake.requests == [
        {
            "path": CHECK_IN,
            "content_type": "application/json",
            "body": {"license_key": KEY, "product": PRODUCT, "fingerprint": FINGERPRINT},
        }
    ]
    assert cached(client)["token"] == renewed_token(env, DUE)
    assert client.license(now=DUE + 60).token_id == "jti-2"
    assert len(fake.requests) == 1


def test_server_unreachable_keeps_the_token_until_the_lease_ends(env, tmp_path, closed_url):
    client = seeded(env, tmp_path, closed_url)
    assert client.license(now=DUE).token_id == "jti-1"
    assert client.license(now=NOW + 3600).token_id == "jti-1"
    with pytest.raises(Expired):
        client.license(now=PAST_LEASE)
    assert cached(client)["token"] == env.activation()  # kept: the server may come back


def test_failed_check_in_backs_off_across_restarts(env, tmp_path, fake):
    fake.reply(CHECK_IN, 503, problem("UNAVAILABLE"))
    client = seeded(env, tmp_path, fake.base_url, retry_interval=120)
    assert client.license(now=DUE).token_id == "jti-1"
    restarted = make_client(env, tmp_path, fake.base_url, retry_interval=120)
    assert restarted.license(now=DUE + 100).token_id == "jti-1"
    assert len(fake.requests) == 1
    fake.replies[CHECK_IN] = [(200, {"token": renewed_token(env, DUE + 121)}, {})]
    assert restarted.license(now=DUE + 121).token_id == "jti-2"
    assert len(fake.requests) == 2


def test_retry_after_longer_than_the_interval_is_respected(env, tmp_path, fake):
    fake.reply(CHECK_IN, 429, problem("RATE_LIMITED"), **{"Retry-After": "500"})
    client = seeded(env, tmp_path, fake.base_url, retry_interval=60)
    client.license(now=DUE)
    client.license(now=DUE + 400)
    assert len(fake.requests) == 1
    client.license(now=DUE + 501)
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [(403, "LICENSE_REVOKED"), (403, "LICENSE_SUSPENDED"), (404, "NOT_ACTIVATED")],
)
def test_refusal_is_recorded_and_the_token_works_until_its_lease_ends(
    env, tmp_path, fake, status, code
):
    fake.reply(CHECK_IN, status, problem(code))
    client = seeded(env, tmp_path, fake.base_url, refusal_interval=1800)

    assert client.license(now=DUE).token_id == "jti-1"
    assert client.refusal is not None
    assert (client.refusal.code, client.refusal.status) == (code, status)
    assert cached(client)["token"] == env.activation()
    assert client.license(now=DUE + 300).token_id == "jti-1"
    assert len(fake.requests) == 1  # no hammering
    with pytest.raises(Expired, match=code):
        client.license(now=PAST_LEASE)
    assert len(fake.requests) == 1


def test_an_expired_lease_is_renewed_when_the_server_answers(env, tmp_path, fake):
    later = NOW + 10 * 86400
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, later)})
    client = seeded(env, tmp_path, fake.base_url)
    assert client.license(now=later).token_id == "jti-2"


def test_a_renewed_token_that_does_not_verify_is_not_stored(env, tmp_path, fake):
    bad = renewed_token(env, DUE, fp=env.fp_hash("another machine"))
    fake.reply(CHECK_IN, 200, {"token": bad})
    client = seeded(env, tmp_path, fake.base_url)
    assert client.license(now=DUE).token_id == "jti-1"
    assert cached(client)["token"] == env.activation()
    with pytest.raises(WrongMachine):
        client.check_in(now=DUE)


def test_check_in_forces_a_renewal_and_reports_failures(env, tmp_path, fake):
    client = seeded(env, tmp_path, fake.base_url)
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, NOW + 10)})
    assert client.check_in(now=NOW + 10).token_id == "jti-2"  # even with a fresh lease
    fake.replies[CHECK_IN] = [(403, problem("LICENSE_REVOKED"), {})]
    with pytest.raises(ActivationRefused) as caught:
        client.check_in(now=NOW + 20)
    assert caught.value.code == "LICENSE_REVOKED"
    assert client.refusal is not None and client.refusal.code == "LICENSE_REVOKED"


def test_a_successful_check_in_clears_a_recorded_refusal(env, tmp_path, fake):
    fake.reply(CHECK_IN, 403, problem("LICENSE_SUSPENDED"))
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, DUE + 10)})
    client = seeded(env, tmp_path, fake.base_url, refusal_interval=5)
    client.license(now=DUE)
    assert client.refusal is not None
    assert client.license(now=DUE + 10).token_id == "jti-2"
    assert client.refusal is None


def test_a_lease_capped_by_the_license_end_is_not_renewed_at_every_start(env, tmp_path, fake):
    # The license itself ends at NOW+3600: every renewed token is also "due".
    capped = env.activation(iat=DUE, nbf=DUE, exp=NOW + 3600, jti="jti-2")
    fake.reply(CHECK_IN, 200, {"token": capped})
    client = seeded(env, tmp_path, fake.base_url, retry_interval=600)
    assert client.license(now=DUE).token_id == "jti-2"
    assert client.license(now=DUE + 1).token_id == "jti-2"
    assert len(fake.requests) == 1


def test_a_client_with_another_fingerprint_cannot_use_the_cache(env, tmp_path):
    seeded(env, tmp_path)
    other = make_client(env, tmp_path, fingerprint="copied to another machine")
    with pytest.raises(WrongMachine):
        other.license(now=NOW)


# --- deactivate ---------------------------------------------------------------------------


def test_deactivate_frees_the_seat_and_deletes_the_cache(env, tmp_path, fake):
    fake.reply(DEACTIVATE, 204)
    client = seeded(env, tmp_path, fake.base_url)
    client.deactivate()
    assert fake.requests[0]["body"] == {
        "license_key": KEY,
        "product": PRODUCT,
        "fingerprint": FINGERPRINT,
    }
    assert not os.path.exists(client.cache_path)
    with pytest.raises(NotActivated):
        client.license(now=NOW)
    with pytest.raises(NotActivated):
        client.deactivate()


def test_deactivate_when_the_seat_is_already_free_still_cleans_up(env, tmp_path, fake):
    fake.reply(DEACTIVATE, 404, problem("NOT_ACTIVATED"))
    client = seeded(env, tmp_path, fake.base_url)
    client.deactivate()
    assert not os.path.exists(client.cache_path)


def test_deactivate_failures_keep_the_token_for_a_retry(env, tmp_path, fake, closed_url):
    with pytest.raises(ServerUnavailable):
        seeded(env, tmp_path, closed_url).deactivate()
    fake.reply(DEACTIVATE, 409, problem("DEACTIVATION_LIMIT"))
    client = make_client(env, tmp_path, fake.base_url)
    with pytest.raises(ActivationRefused) as caught:
        client.deactivate()
    assert caught.value.code == "DEACTIVATION_LIMIT"
    assert client.license(now=NOW).token_id == "jti-1"


# --- air-gapped ---------------------------------------------------------------------------


def test_offline_request_has_the_documented_shape(env, tmp_path):
    client = make_client(env, tmp_path)
    request = client.offline_request(f" {KEY} ", name="lab pc", platform="windows")
    assert set(request) == {
        "type",
        "version",
        "product",
        "fingerprint",
        "license_key",
        "name",
        "platform",
        "nonce",
        "created_at",
    }
    assert request["type"] == "activation_request"
    assert request["version"] == 1
    assert (request["product"], request["fingerprint"], request["license_key"]) == (
        PRODUCT,
        FINGERPRINT,
        KEY,
    )
    assert (request["name"], request["platform"]) == ("lab pc", "windows")
    assert isinstance(request["nonce"], str) and len(request["nonce"]) >= 20
    assert request["created_at"].endswith("Z")
    created = datetime.fromisoformat(request["created_at"].replace("Z", "+00:00"))
    assert created.utcoffset().total_seconds() == 0
    assert client.offline_request(KEY)["nonce"] != request["nonce"]
    json.dumps(request)  # plain JSON


def test_write_offline_request_writes_a_private_json_file(env, tmp_path):
    client = make_client(env, tmp_path)
    path = tmp_path / "out" / "request.json"
    request = client.write_offline_request(path, KEY, name="lab pc")
    assert json.loads(path.read_text()) == request
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def response_for(env, request: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    return {
        "type": "activation_response",
        "version": 1,
        "token": token or env.activation(),
        "activation_id": "act_01",
        "lease_expires_at": "2026-05-28T21:00:00Z",
        "nonce": request["nonce"],
    }


def test_offline_round_trip_request_then_install(env, tmp_path, fake):
    client = make_client(env, tmp_path, fake.base_url)
    request = client.offline_request(KEY, name="lab pc")
    response_path = tmp_path / "response.json"
    response_path.write_text(json.dumps(response_for(env, request)))

    license = client.install(response_path, now=NOW)

    assert license.activation_id == env.ACTIVATION_ID
    assert client.license(now=NOW) == license
    state = cached(client)
    assert state["license_key"] == KEY  # remembered from the request, for check-ins
    assert "request" not in state
    assert stat.S_IMODE(os.stat(client.cache_path).st_mode) == 0o600
    # Once the machine has network, it checks in with that key.
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, DUE)})
    assert client.license(now=DUE).token_id == "jti-2"
    assert fake.requests[0]["body"]["license_key"] == KEY


def test_install_refuses_a_response_to_another_request(env, tmp_path):
    client = make_client(env, tmp_path)
    old = client.offline_request(KEY)
    client.offline_request(KEY)
    with pytest.raises(MalformedToken, match="nonce"):
        client.install(response_for(env, old), now=NOW)
    with pytest.raises(NotActivated):
        client.license(now=NOW)


def test_install_accepts_a_plain_activation_answer(env, tmp_path):
    client = make_client(env, tmp_path)
    _, answer = activation_answer(env.activation())
    assert client.install(answer, license_key=KEY, now=NOW).activation_id == env.ACTIVATION_ID
    assert cached(client)["license_key"] == KEY


def test_install_verifies_the_token_for_this_machine(env, tmp_path):
    client = make_client(env, tmp_path)
    request = client.offline_request(KEY)
    other = env.activation(fp=env.fp_hash("another machine"))
    with pytest.raises(WrongMachine):
        client.install(response_for(env, request, other), now=NOW)
    with pytest.raises(NotActivated):
        client.license(now=NOW)


@pytest.mark.parametrize(
    "content",
    [
        b"not json at all",
        b"[]",
        b'{"type": "deactivation_request", "token": "x"}',
        b'{"type": "activation_response", "version": 2, "token": "x"}',
        b'{"type": "activation_response", "version": 1}',
        b'{"type": "activation_response", "version": 1, "token": 5}',
        b'{"type": "activation_response", "version": 1, "token": "x", "nonce": 7}',
        b"\xff\xfe",
    ],
)
def test_install_refuses_malformed_response_files(env, tmp_path, content):
    path = tmp_path / "response.json"
    path.write_bytes(content)
    with pytest.raises(MalformedToken):
        make_client(env, tmp_path).install(path, now=NOW)


def test_offline_deactivation_request_removes_the_local_token(env, tmp_path):
    client = seeded(env, tmp_path)
    request = client.offline_deactivation_request()
    assert set(request) == {
        "type",
        "version",
        "product",
        "fingerprint",
        "license_key",
        "nonce",
        "created_at",
    }
    assert request["type"] == "deactivation_request"
    assert request["version"] == 1
    assert (request["product"], request["fingerprint"], request["license_key"]) == (
        PRODUCT,
        FINGERPRINT,
        KEY,
    )
    assert request["created_at"].endswith("Z")
    with pytest.raises(NotActivated):
        client.license(now=NOW)
    with pytest.raises(NotActivated):
        client.offline_deactivation_request()
    assert client.offline_deactivation_request(license_key=KEY)["license_key"] == KEY


def test_write_offline_deactivation_request_writes_then_removes(env, tmp_path):
    client = seeded(env, tmp_path)
    path = tmp_path / "out" / "deactivate.json"
    request = client.write_offline_deactivation_request(path)
    assert json.loads(path.read_text()) == request
    assert request["type"] == "deactivation_request"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(NotActivated):
        client.license(now=NOW)


def test_a_deactivation_file_that_cannot_be_written_keeps_the_token(env, tmp_path):
    client = seeded(env, tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError):
        client.write_offline_deactivation_request(blocker / "deactivate.json")
    assert client.license(now=NOW).token_id == "jti-1"


def test_a_naive_now_is_refused_like_the_verifier_does(env, tmp_path):
    client = seeded(env, tmp_path)
    with pytest.raises(LicenseError, match="timezone-aware"):
        client.license(now=datetime(2026, 5, 28, 12, 0))


# --- a broken or hostile server never stops a product that holds a valid token ------------

DAY = 86400


@pytest.mark.parametrize(
    "value",
    [
        "\u00b2",  # "²": str.isdigit() accepts it, float() does not
        "\u00b9\u00b2",
        "1e3",
        "-5",
        "5.5",
        "inf",
        "nan",
        "0x10",
        "9" * 5000,
        "Wed, 99 Foo 99999 99:99:99 GMT",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "Mon, 01 Jan 0001 00:00:00 +0000",
        "Thu, 01 Jan 1970 00:00:00 +9999",
        "\u00ff\u00fe",
    ],
)
def test_junk_retry_after_never_escapes(env, tmp_path, fake, value):
    fake.reply(ACTIVATE, 503, problem("UNAVAILABLE"), **{"Retry-After": value})
    fake.reply(CHECK_IN, 503, problem("UNAVAILABLE"), **{"Retry-After": value})
    with pytest.raises(ServerUnavailable) as caught:
        make_client(env, tmp_path, fake.base_url).activate(KEY, now=NOW)
    retry_after = caught.value.retry_after
    assert retry_after is None or 0 <= retry_after <= DAY
    client = seeded(env, tmp_path, fake.base_url)
    assert client.license(now=DUE).token_id == "jti-1"  # a check-in was due; the token holds
    assert [r["path"] for r in fake.requests] == [ACTIVATE, CHECK_IN]


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (200, DEEP, ServerUnavailable),
        (201, b'{"token": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", ServerUnavailable),
        (403, DEEP, ActivationRefused),
        (404, b'{"code": ' + b"{" * 10 + b"}", ActivationRefused),
    ],
)
def test_deeply_nested_answers_are_documented_errors(env, tmp_path, fake, status, body, error):
    fake.reply(ACTIVATE, status, body)
    fake.reply(CHECK_IN, status, body)
    with pytest.raises(error):
        make_client(env, tmp_path, fake.base_url).activate(KEY, now=NOW)
    client = seeded(env, tmp_path, fake.base_url)
    assert client.license(now=DUE).token_id == "jti-1"
    with pytest.raises(error):
        client.check_in(now=DUE)
    assert client.license(now=DUE).token_id == "jti-1"


def test_a_refusal_cannot_bloat_the_cache_out_of_use(env, tmp_path, fake):
    # 200 KB of UTF-8 on the wire, three times that as the cache file's escaped JSON.
    huge = {"code": "X" * 1000, "detail": "\u00e9" * 100_000}
    fake.reply(CHECK_IN, 403, json.dumps(huge, ensure_ascii=False).encode("utf-8"))
    client = seeded(env, tmp_path, fake.base_url)
    assert client.license(now=DUE).token_id == "jti-1"
    restarted = make_client(env, tmp_path, fake.base_url)
    assert restarted.license(now=DUE + 1).token_id == "jti-1"
    assert restarted.refusal is not None
    assert len(restarted.refusal.code) <= 100 and len(restarted.refusal.detail) <= 1000


def test_a_deeply_nested_response_file_is_malformed(env, tmp_path):
    path = tmp_path / "response.json"
    path.write_bytes(DEEP)
    with pytest.raises(MalformedToken):
        make_client(env, tmp_path).install(path, now=NOW)


def test_a_damaged_cache_file_means_not_activated(env, tmp_path):
    client = make_client(env, tmp_path)
    os.makedirs(tmp_path / "cache")
    for content in (DEEP, b"\xff\xfe", b"[]", b'{"product": "acme-ide", "token": 5}'):
        with open(client.cache_path, "wb") as handle:
            handle.write(content)
        with pytest.raises(NotActivated):
            client.license(now=NOW)


def test_a_back_off_set_with_a_test_now_does_not_hold_back_the_real_run(env, tmp_path, fake, clock):
    fake.reply(CHECK_IN, 503, problem("UNAVAILABLE"))
    client = seeded(env, tmp_path, fake.base_url)
    with pytest.raises(Expired):
        client.license(now=DUE + 10 * DAY)  # a test of "ten days later": back off till then
    assert len(fake.requests) == 1
    fake.replies[CHECK_IN] = [(200, {"token": renewed_token(env, DUE)}, {})]
    clock.now = DUE  # the real run, with a check-in due
    assert client.license().token_id == "jti-2"
    assert len(fake.requests) == 2


@pytest.mark.parametrize("stored", [1e300, float("inf"), NOW + 400 * DAY])
def test_a_damaged_back_off_does_not_hold_back_a_renewal(env, tmp_path, fake, stored):
    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, DUE)})
    client = seeded(env, tmp_path, fake.base_url)
    state = cached(client)
    state["next_check_in_at"] = stored
    with open(client.cache_path, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    assert client.license(now=DUE).token_id == "jti-2"


def test_a_back_off_within_the_longest_wait_is_kept(env, tmp_path, fake):
    fake.reply(CHECK_IN, 503, problem("UNAVAILABLE"))
    client = seeded(env, tmp_path, fake.base_url, refusal_interval=30 * DAY)
    state = cached(client)
    state["next_check_in_at"] = DUE + 29 * DAY
    with open(client.cache_path, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    assert client.license(now=DUE).token_id == "jti-1"
    assert fake.requests == []


@pytest.mark.parametrize("now", [10**400, float("inf"), float("nan"), NOW * 1000, -1])
def test_a_bad_now_is_a_license_error_in_the_client(env, tmp_path, now):
    client = seeded(env, tmp_path)
    with pytest.raises(LicenseError):
        client.license(now=now)
    with pytest.raises(LicenseError):
        client.check_in(now=now)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fingerprint": "\ud800"},
        {"timeout": float("inf")},
        {"timeout": float("nan")},
        {"retry_interval": float("inf")},
        {"refusal_interval": float("nan")},
        {"retry_interval": -1},
    ],
)
def test_constructor_refuses_unusable_values(env, tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_client(env, tmp_path, **kwargs)


def test_a_renewal_that_cannot_be_stored_falls_back_to_the_stored_token(
    env, tmp_path, fake, monkeypatch
):
    from licentia_verifier import client as client_module

    fake.reply(CHECK_IN, 200, {"token": renewed_token(env, DUE)})
    client = seeded(env, tmp_path, fake.base_url)

    def disk_full(path: str, data: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(client_module, "_atomic_write", disk_full)
    assert client.license(now=DUE).token_id == "jti-1"
    with pytest.raises(OSError):
        client.check_in(now=DUE)  # asked for explicitly: the failure is reported

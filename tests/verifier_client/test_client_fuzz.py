"""LicenseClient against a server that answers junk (a local stdlib http.server in a thread).

Random status lines, headers (``Retry-After`` above all), and bodies: random bytes,
truncated or deeply nested JSON, JSON that is not an object, objects whose members have the
wrong types, answers larger than the client reads, a Content-Length that lies. Whatever the
server does, only the client's documented errors (the LicenseError family) escape, and a
client that holds a valid token keeps verifying it. No Licentia server or database needed.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from licentia_verifier import LicenseError, Verifier
from licentia_verifier.client import LicenseClient, NotActivated
from support import seeded_signing_key

from keys.tokens import TokenSubject, issue_activation_token

ISSUER = "https://licensing.example.com"
PRODUCT = "acme-ide"
FINGERPRINT = "fp-client-fuzz"
KEY = "LK-AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
LEASE = timedelta(hours=1)
DUE = T0 + LEASE * 0.8  # less than a third of the lease left: license() checks in
MAX_RESPONSE = 256 * 1024

SIGNER = seeded_signing_key(b"client-fuzz")
JWKS = {"keys": [SIGNER.public_jwk()]}
SUBJECT = TokenSubject(
    license_id="5f0c6f1e-8f4e-4d0a-9a43-5b7c1f0e2d11",
    organization_id="0b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    product=PRODUCT,
    tier="pro",
    features={"sso": True},
    max_activations=3,
    license_expires_at=None,
)
TOKEN = issue_activation_token(
    SIGNER,
    SUBJECT,
    issuer=ISSUER,
    activation_id="7d9e8f70-1a2b-4c3d-8e4f-5a6b7c8d9e0f",
    fingerprint=FINGERPRINT,
    now=T0,
    lease=LEASE,
)
VERIFIER = Verifier.from_jwks(JWKS, product=PRODUCT, issuer=ISSUER)


class JunkServer:
    """Reads each request, then writes ``self.answer`` to the socket as is and hangs up."""

    def __init__(self) -> None:
        self.answer = b""
        self.requests = 0
        junk = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                junk.requests += 1
                self.close_connection = True
                try:
                    self.wfile.write(junk.answer)
                    self.wfile.flush()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def junk():
    server = JunkServer()
    yield server
    server.close()


# --- what the server answers ----------------------------------------------------------------

latin1 = st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f")
retry_afters = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**40).map(str),
    st.sampled_from(["\u00b2", "\u00b3\u00b9", "1e3", "5.5", "inf", "nan", " ", "0x10"]),
    st.sampled_from(["Wed, 99 Foo 99999 99:99:99 GMT", "Fri, 31 Dec 9999 23:59:59 GMT"]),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: format_datetime(d.replace(tzinfo=UTC), usegmt=True)
    ),
    st.text(latin1, max_size=40),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.just(TOKEN.token),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=10,
)
answer_objects = st.fixed_dictionaries(
    {},
    optional={
        "token": json_values | st.text(max_size=100),
        "code": json_values,
        "detail": json_values,
        "title": json_values,
        "activation_id": json_values,
        "lease_expires_at": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    answer_objects.map(lambda v: json.dumps(v).encode()),
    answer_objects.map(lambda v: json.dumps(v).encode()[: len(json.dumps(v)) // 2]),  # cut
    st.integers(min_value=1, max_value=120_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=50_000).map(lambda n: b'{"token":' * n),
    st.just(b"x" * (MAX_RESPONSE + 10)),
    st.just(json.dumps({"token": TOKEN.token.replace("A", "B", 1)}).encode()),
)
statuses = st.one_of(
    st.sampled_from([200, 201, 204, 301, 307, 400, 403, 404, 408, 409, 422, 425, 429, 500, 503]),
    st.integers(min_value=100, max_value=999),
)
header_names = st.sampled_from(
    ["Retry-After", "Content-Type", "Location", "Connection", "X-Junk", "Transfer-Encoding"]
)


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    status = draw(statuses)
    reason = draw(st.text(latin1, max_size=12))
    body = draw(bodies)
    headers = [("Retry-After", draw(retry_afters))] if draw(st.booleans()) else []
    headers += draw(st.lists(st.tuples(header_names, st.text(latin1, max_size=30)), max_size=4))
    length = draw(st.sampled_from(["exact", "none", "longer", "shorter", "junk"]))
    if length == "exact":
        headers.append(("Content-Length", str(len(body))))
    elif length == "longer":
        headers.append(("Content-Length", str(len(body) + draw(st.integers(1, 10**6)))))
    elif length == "shorter" and body:
        headers.append(("Content-Length", str(draw(st.integers(0, len(body) - 1)))))
    elif length == "junk":
        headers.append(("Content-Length", draw(st.text(latin1, max_size=8))))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode("latin-1") + b"\r\n" + body


def client_for(base_url: str, cache_dir: str) -> LicenseClient:
    return LicenseClient(
        base_url,
        product=PRODUCT,
        verifier=VERIFIER,
        cache_dir=cache_dir,
        fingerprint=FINGERPRINT,
        timeout=5.0,
        retry_interval=0,
        refusal_interval=0,
    )


def holding_a_valid_token(base_url: str, cache_dir: str) -> LicenseClient:
    client = client_for(base_url, cache_dir)
    client.install({"token": TOKEN.token}, license_key=KEY, now=T0)
    return client


def assert_still_valid(client: LicenseClient) -> None:
    assert client.license(now=DUE).token_id == TOKEN.jti


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(answer=answers())
@example(answer=b"HTTP/1.1 503 X\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n\r\n")
@example(answer=b"HTTP/1.1 200 OK\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000)
@example(answer=b"HTTP/1.1 403 No\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000)
@example(answer=b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n{")
@example(answer=b"garbage\r\n\r\n")
@example(answer=b"")
def test_a_junk_answering_server_never_stops_a_valid_token(junk, answer):
    junk.answer = answer
    with tempfile.TemporaryDirectory() as cache_dir:
        client = holding_a_valid_token(junk.base_url, cache_dir)

        # license(): a check-in is due; whatever the answer, the cached token keeps working.
        assert_still_valid(client)
        # check_in(): only documented errors, and the token stays.
        try:
            renewed = client.check_in(now=DUE)
        except LicenseError:
            pass
        else:  # only a genuine token verifies: the junk may carry the one the client holds
            assert renewed.token_id == TOKEN.jti
        assert_still_valid(client)
        # deactivate(): succeeds (the server may well say 2xx) or raises a documented error
        # and keeps the token for a retry.
        try:
            client.deactivate()
        except LicenseError:
            assert_still_valid(client)
        else:
            with pytest.raises(NotActivated):
                client.license(now=DUE)

    with tempfile.TemporaryDirectory() as cache_dir:
        fresh = client_for(junk.base_url, cache_dir)
        try:
            activated = fresh.activate(KEY, now=T0)
        except LicenseError:
            assert os.listdir(cache_dir) == []  # nothing stored
        else:
            assert activated.token_id == TOKEN.jti


response_files = st.one_of(
    bodies,
    answer_objects.map(lambda v: json.dumps({"type": "activation_response", **v}).encode()),
    st.integers(min_value=1, max_value=120_000).map(lambda n: b"[" * n + b"]" * n),
)


@FUZZ
@given(content=response_files)
@example(content=b"[" * 100_000 + b"]" * 100_000)
@example(content=b'{"token": ' + b"{" * 50_000)
def test_a_junk_response_file_is_malformed_and_leaves_the_token(content):
    with tempfile.TemporaryDirectory() as directory:
        client = holding_a_valid_token("http://127.0.0.1:9", os.path.join(directory, "cache"))
        path = os.path.join(directory, "response.json")
        with open(path, "wb") as handle:
            handle.write(content)
        try:
            installed = client.install(path, now=T0)
        except LicenseError:
            pass
        else:  # only a genuine token verifies
            assert installed.token_id == TOKEN.jti
        assert client.license(now=T0).token_id == TOKEN.jti


def test_a_server_that_hangs_up_at_once_is_server_unavailable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]

        def hang_up() -> None:
            for _ in range(2):
                connection, _ = listener.accept()
                connection.close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with tempfile.TemporaryDirectory() as cache_dir:
            client = holding_a_valid_token(f"http://127.0.0.1:{port}", cache_dir)
            assert_still_valid(client)
            with pytest.raises(LicenseError):
                client.check_in(now=DUE)
        thread.join(5)

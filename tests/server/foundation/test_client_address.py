"""The client address: the socket's peer, or behind LICENTIA_TRUSTED_PROXIES (CIDRs) the
right-most untrusted X-Forwarded-For hop; checked on the function and on a real server."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from support import TestDatabase

from server.client_address import (
    ClientAddresses,
    client_address,
    parse_address,
    parse_networks,
)
from server.observability import _client_ip
from server.settings import Settings, SettingsError

PASSWORD = "correct horse battery"


def _scope(
    peer: str, forwarded: list[str], trusted: tuple[str, ...]
) -> tuple[dict, ClientAddresses]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234), "headers": headers}, ClientAddresses(trusted)


def client_ip_of(request: tuple[dict, ClientAddresses]) -> str | None:
    """What the middleware records for this peer and header under these trusted proxies."""
    scope, addresses = request
    return _client_ip(scope, addresses)


def test_untrusted_peer_is_the_client() -> None:
    assert client_ip_of(_scope("203.0.113.9", ["1.2.3.4"], ())) == "203.0.113.9"
    assert client_ip_of(_scope("203.0.113.9", ["1.2.3.4"], ("10.0.0.1",))) == "203.0.113.9"
    assert client_ip_of(_scope("127.0.0.1", ["1.2.3.4"], ())) == "127.0.0.1"


def test_trusted_proxy_gives_the_nearest_untrusted_hop() -> None:
    # the client claims 6.6.6.6; the load balancer appended the address it really saw
    scope = _scope("10.0.0.1", ["6.6.6.6, 198.51.100.7"], ("10.0.0.1",))
    assert client_ip_of(scope) == "198.51.100.7"


def test_chained_trusted_proxies_and_repeated_headers() -> None:
    trusted = ("10.0.0.1", "10.0.0.2")
    scope = _scope("10.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.2"], trusted)
    assert client_ip_of(scope) == "198.51.100.7"
    # every hop trusted: the farthest proxy is the caller
    assert client_ip_of(_scope("10.0.0.1", ["10.0.0.2"], trusted)) == "10.0.0.2"
    assert client_ip_of(_scope("10.0.0.1", [], trusted)) == "10.0.0.1"


def test_trusted_proxies_are_networks() -> None:
    trusted = ("10.0.0.0/8", "2001:db8::/32")
    assert client_ip_of(_scope("10.9.8.7", ["198.51.100.7, 10.1.1.1"], trusted)) == "198.51.100.7"
    assert client_ip_of(_scope("2001:db8::5", ["[2001:db8::9]:443"], trusted)) == "2001:db8::9"
    assert client_ip_of(_scope("2001:db8::5", ["2a00::1, 2001:db8::9"], trusted)) == "2a00::1"
    assert client_ip_of(_scope("11.0.0.1", ["198.51.100.7"], trusted)) == "11.0.0.1"


def test_nonsense_in_the_header_never_becomes_the_client() -> None:
    trusted = ("10.0.0.0/8",)
    for header in ("not-an-address", "198.51.100.7, unknown", "1.2.3.4, ", "x" * 5000):
        assert client_ip_of(_scope("10.0.0.1", [header], trusted)) == "10.0.0.1", header
    # nonsense further left than the first untrusted hop does not matter
    assert client_ip_of(_scope("10.0.0.1", ["junk, 198.51.100.7"], trusted)) == "198.51.100.7"


def test_addresses_are_normalised() -> None:
    assert parse_address("198.51.100.7:5000") == parse_address("198.51.100.7")
    assert str(parse_address("::ffff:198.51.100.7")) == "198.51.100.7"
    assert str(parse_address(" [2001:DB8::1]:8443 ")) == "2001:db8::1"
    assert parse_address("fe80::1%eth0") == parse_address("fe80::1")
    assert parse_address("") is None and parse_address("[") is None
    # an IPv4-mapped peer is matched against IPv4 networks
    assert client_address("::ffff:10.0.0.1", ["198.51.100.7"], parse_networks(["10.0.0.0/8"])) == (
        "198.51.100.7"
    )
    assert client_address(None, ["198.51.100.7"], ()) is None
    assert client_address("testclient", ["198.51.100.7"], ()) == "testclient"


def test_a_bad_trusted_proxy_setting_stops_the_start() -> None:
    env = {"LICENTIA_DATABASE_URL": "postgresql://u@h/db"}
    ok = Settings.from_env(env | {"LICENTIA_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"})
    assert ok.trusted_proxies == ("10.0.0.0/8", "192.0.2.7")
    with pytest.raises(SettingsError, match=r"'10\.0\.0\.0/33' is not an IP address or CIDR"):
        Settings.from_env(env | {"LICENTIA_TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.0/33"})
    with pytest.raises(ValueError, match="load-balancer"):
        Settings(database_url="postgresql+asyncpg://u@h/db", trusted_proxies=("load-balancer",))


# --- through a real `licentia serve` (uvicorn must not rewrite the peer) ---------------------


def _signup(base_url: str, email: str, forwarded: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/api/v1/auth/signup",
        json={"email": email, "password": PASSWORD, "full_name": "Ada", "organization_name": "A"},
        headers={"X-Forwarded-For": forwarded},
        timeout=60,
    )


def _login(base_url: str, email: str, forwarded: str) -> int:
    return httpx.post(
        f"{base_url}/api/v1/auth/login",
        json={"email": email, "password": "wrong password!!"},
        headers={"X-Forwarded-For": forwarded},
        timeout=60,
    ).status_code


def _audit_ips(database: TestDatabase, action: str) -> list[str]:
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute("SELECT ip FROM audit_events WHERE action = %s", (action,)).fetchall()
    return [row[0] for row in rows]


def test_serve_ignores_x_forwarded_for_from_an_untrusted_peer(
    live_server_factory, database: TestDatabase
) -> None:
    """Without trusted proxies a spoofed header from loopback changes nothing: each limit per
    address still holds (in both workers) and the audit log keeps the socket's address."""
    server = live_server_factory(
        workers=2,
        LICENTIA_SIGNUPS_PER_HOUR="2",
        LICENTIA_UNKNOWN_KEY_ATTEMPTS_PER_MINUTE="3",
        LICENTIA_LOGIN_FAILURES_PER_ADDRESS="3",
    )
    # Six sign-ups against a limit of two: even split across two windows, some are refused.
    statuses = [_signup(server.base_url, f"s{i}@example.com", f"203.0.113.{i}") for i in range(6)]
    codes = [r.status_code for r in statuses]
    assert set(codes) <= {201, 429} and codes.count(429) >= 2, codes
    assert _audit_ips(database, "user.signup")
    assert set(_audit_ips(database, "user.signup")) == {"127.0.0.1"}

    guess = {"license_key": "LK-GUESS", "product": "local_cli", "fingerprint": "f"}
    answers = [
        httpx.post(
            f"{server.base_url}/api/v1/licenses/validate",
            json=guess,
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
            timeout=30,
        ).status_code
        for i in range(8)
    ]
    assert set(answers) <= {200, 429} and answers.count(429) >= 1, answers

    # three failed logins from this address (any e-mail), then it waits, whatever it claims
    logins = [_login(server.base_url, f"g{i}@example.com", f"192.0.2.{i}") for i in range(5)]
    assert logins == [401, 401, 401, 429, 429]


def test_serve_takes_the_right_most_untrusted_hop_behind_trusted_proxies(
    live_server_factory, database: TestDatabase
) -> None:
    server = live_server_factory(
        LICENTIA_TRUSTED_PROXIES="127.0.0.1/32, 10.0.0.0/8",
        LICENTIA_LOGIN_FAILURES_PER_ADDRESS="3",
    )
    # the client wrote 6.6.6.6; our proxies saw 198.51.100.7, then 10.1.2.3 passed it on
    created = _signup(server.base_url, "p@example.com", "6.6.6.6, 198.51.100.7, 10.1.2.3")
    assert created.status_code == 201, created.text
    assert _audit_ips(database, "user.signup") == ["198.51.100.7"]
    # the login limit counts 198.51.100.9, whatever its client wrote to the left of it
    spoofed = [f"203.0.113.{i}, 198.51.100.9, 10.0.0.1" for i in range(4)]
    assert [_login(server.base_url, f"g{i}@example.com", h) for i, h in enumerate(spoofed)] == [
        401,
        401,
        401,
        429,
    ]
    assert _login(server.base_url, "g9@example.com", "198.51.100.10") == 401


def test_a_remembered_peer_still_has_its_header_read_on_every_request() -> None:
    addresses = ClientAddresses(("10.0.0.0/8",))
    first = {"client": ("10.0.0.1", 1), "headers": [(b"x-forwarded-for", b"198.51.100.7")]}
    second = {"client": ("10.0.0.1", 2), "headers": [(b"x-forwarded-for", b"203.0.113.9")]}
    assert _client_ip(first, addresses) == "198.51.100.7"
    assert _client_ip(second, addresses) == "203.0.113.9"
    untrusted = {"client": ("::ffff:192.0.2.1", 3), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    assert _client_ip(untrusted, addresses) == "192.0.2.1"
    assert _client_ip(untrusted, addresses) == "192.0.2.1"


@pytest.mark.parametrize(
    ("peer", "protos", "expected"),
    [
        ("10.0.0.5", ["https"], True),  # our proxy says so
        ("10.0.0.5", ["http"], False),
        ("10.0.0.5", ["https, http"], False),  # the last value is our proxy's
        ("10.0.0.5", ["http", "https"], True),
        ("10.0.0.5", [], False),
        ("203.0.113.9", ["https"], False),  # anyone else's header is ignored
        ("testclient", ["https"], False),
        (None, ["https"], False),
    ],
)
def test_forwarded_https_only_from_a_trusted_proxy(
    peer: str | None, protos: list[str], expected: bool
) -> None:
    from server.client_address import forwarded_https, parse_networks

    assert forwarded_https(peer, protos, parse_networks(["10.0.0.0/8"])) is expected

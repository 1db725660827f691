"""The client address behind proxies: only trusted proxies' X-Forwarded-For counts."""

from __future__ import annotations

from types import SimpleNamespace

from server.observability import _client_ip


def _scope(peer: str, forwarded: list[str], trusted: tuple[str, ...]) -> dict:
    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(trusted_proxies=trusted)))
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 1234), "app": app, "headers": headers}


def test_untrusted_peer_is_the_client() -> None:
    assert _client_ip(_scope("203.0.113.9", ["1.2.3.4"], ())) == "203.0.113.9"
    assert _client_ip(_scope("203.0.113.9", ["1.2.3.4"], ("10.0.0.1",))) == "203.0.113.9"


def test_trusted_proxy_gives_the_nearest_untrusted_hop() -> None:
    # the client claims 6.6.6.6; the load balancer appended the address it really saw
    scope = _scope("10.0.0.1", ["6.6.6.6, 198.51.100.7"], ("10.0.0.1",))
    assert _client_ip(scope) == "198.51.100.7"


def test_chained_trusted_proxies_and_repeated_headers() -> None:
    trusted = ("10.0.0.1", "10.0.0.2")
    scope = _scope("10.0.0.1", ["6.6.6.6", "198.51.100.7, 10.0.0.2"], trusted)
    assert _client_ip(scope) == "198.51.100.7"
    assert _client_ip(_scope("10.0.0.1", ["10.0.0.2"], trusted)) == "10.0.0.1"

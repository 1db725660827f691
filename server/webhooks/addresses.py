"""Where a webhook may be sent (the SSRF rules), checked when an endpoint is saved and again,
on the freshly resolved addresses, before every attempt (DNS rebinding): the attempt then
connects to the address that was checked, never to a second resolution."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.errors import InvalidInput

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _forbidden(code: str, detail: str) -> InvalidInput:
    return InvalidInput(detail, code=code)


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to ``address``; ``host`` goes in the Host header and SNI."""

    scheme: str
    host: str
    port: int
    path: str
    address: str

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse(url: str, *, allow_insecure: bool) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path-and-query)`` or ``WEBHOOK_URL_INVALID`` /
    ``WEBHOOK_URL_FORBIDDEN`` (not https)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _forbidden("WEBHOOK_URL_INVALID", "The URL cannot be parsed") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise _forbidden("WEBHOOK_URL_INVALID", "The URL must be an absolute https:// URL")
    if parts.scheme == "http" and not allow_insecure:
        raise _forbidden(
            "WEBHOOK_URL_FORBIDDEN",
            "Webhook URLs must use https:// (http:// only with LICENTIA_WEBHOOK_ALLOW_INSECURE=1)",
        )
    if parts.username is not None or parts.password is not None:
        raise _forbidden("WEBHOOK_URL_INVALID", "The URL must not carry credentials")
    if parts.fragment:
        raise _forbidden("WEBHOOK_URL_INVALID", "The URL must not have a fragment")
    default = 443 if parts.scheme == "https" else 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or default, path


def public(address: IpAddress) -> bool:
    """A globally routable unicast address (not loopback, private, link-local, shared,
    reserved, multicast or unspecified: the cloud metadata addresses are among these)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    seen: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in seen:
            seen.append(address)
    return seen


async def check(url: str, *, allow_insecure: bool, allow_private: bool) -> Target:
    """Parse, resolve and check ``url``; every resolved address must be allowed."""
    scheme, host, port, path = parse(url, allow_insecure=allow_insecure)
    addresses = await resolve(host, port)
    if not addresses:
        raise _forbidden("WEBHOOK_URL_UNRESOLVABLE", f"The host {host!r} does not resolve")
    if not allow_private and not all(public(a) for a in addresses):
        raise _forbidden(
            "WEBHOOK_URL_FORBIDDEN",
            "The URL resolves to a loopback, private, link-local or metadata address "
            "(allowed only with LICENTIA_WEBHOOK_ALLOW_PRIVATE=1)",
        )
    return Target(scheme, host, port, path, str(addresses[0]))

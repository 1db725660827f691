"""Who is calling: the TCP peer, or behind trusted proxies the right-most untrusted hop.

Every per-address limit (logins, sign-ups, unknown license keys) and every audit row rests
on this answer, so it is decided here alone. uvicorn is told to leave the ASGI scope's
``client`` as the socket gave it (``licentia serve`` turns its proxy-header handling off);
``X-Forwarded-For`` is read only when the peer is inside ``LICENTIA_TRUSTED_PROXIES``.

A proxy appends the address it saw to the header, so the hops a client wrote itself sit to
the left of those our own proxies added. Reading from the right, each trusted hop is
skipped; the first untrusted one is the client. A hop that is not an address where a trusted
proxy should have written one ends the walk at the last trusted hop, so nonsense in the
header can never mint a new identity.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``2001:db8::/32`` or a single address; ``ValueError`` names a bad one."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(_unmapped_network(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValueError(
                f"trusted_proxies: {entry!r} is not an IP address or CIDR network "
                "(e.g. 10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"
            ) from None
    return tuple(networks)


@functools.lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    """``parse_networks`` of a setting, parsed once per process."""
    return parse_networks(entries)


def parse_address(text: str) -> Address | None:
    """An address as peers and proxies write it (``[2001:db8::1]:443``, ``192.0.2.7:5000``
    and IPv4-mapped IPv6 included), or ``None`` when it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has two colons at least
        text = text.partition(":")[0]
    text = text.partition("%")[0]  # no zone index
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]
) -> str | None:
    """The client: ``peer`` itself unless it is trusted, else the right-most untrusted hop of
    the ``X-Forwarded-For`` values (in header order). Addresses come back normalised."""
    if peer is None:
        return None
    current = parse_address(peer)
    if current is None:
        return peer[:64]  # not an IP peer (a Unix socket, a test client): nothing to walk
    if not _is_trusted(current, trusted):
        return str(current)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        current = address
        if not _is_trusted(address, trusted):
            break
    return str(current)


class ClientAddresses:
    """``client_address`` for one setting of trusted proxies, built once per process.

    It is asked on every request, so the peer's parsing is remembered per distinct peer
    (peers repeat: keep-alive connections, a proxy's few addresses), and without trusted
    proxies ``X-Forwarded-For`` is not even looked at."""

    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self.trusted = parse_networks(trusted_proxies)
        self._peer = functools.lru_cache(maxsize=4096)(self._parse_peer)

    def __call__(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        if peer is None:
            return None
        normalised, trusted = self._peer(peer)
        if not trusted:
            return normalised
        return client_address(peer, forwarded_for, self.trusted)

    def _parse_peer(self, peer: str) -> tuple[str, bool]:
        address = parse_address(peer)
        if address is None:
            return peer[:64], False
        return str(address), _is_trusted(address, self.trusted)


def _is_trusted(address: Address, trusted: tuple[Network, ...]) -> bool:
    return any(address.version == net.version and address in net for net in trusted)


def _unmapped_network(network: Network) -> Network:
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def forwarded_https(
    peer: str | None, forwarded_proto: Iterable[str], trusted: tuple[Network, ...]
) -> bool:
    """Whether a trusted proxy in front (the peer itself) says the client used https: the
    last ``X-Forwarded-Proto`` value, which that proxy wrote. Anyone else's header is
    ignored."""
    address = parse_address(peer) if peer else None
    if address is None or not _is_trusted(address, trusted):
        return False
    values = [v.strip().lower() for value in forwarded_proto for v in value.split(",")]
    return bool(values) and values[-1] == "https"

"""Which network addresses a plugin (or a package download) may reach without an explicit grant.

One rule for every outbound connection plughost makes on someone's behalf — ``ctx.http`` and
installs from a URL: only globally routable, non-multicast addresses, looking through the IPv6
forms that hide an IPv4 address (IPv4-mapped, 6to4, NAT64), so ``::ffff:127.0.0.1`` is loopback.

Anything else needs an explicit allowance — a grant ``net:ADDRESS[:PORT]`` for ``ctx.http``, an
``allow_private_urls`` entry for installs — and :func:`allowance_opens` is the one rule for what
such an allowance opens: that address (or ``localhost`` for loopback) *on one port*, the one it
names or, when it names none, the scheme's default port. Checked on the first request and on
every redirect hop, so allowing a mirror at ``10.0.0.5`` never opens ``10.0.0.5:6379``.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["IPAddress", "allowance_opens", "default_port", "is_public_address", "unwrap"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")


def unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4 or NAT64 IPv6 address, else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public_address(ip: IPAddress) -> bool:
    """Whether an address is globally routable (and not multicast), looking through IPv6 wraps."""
    inner = unwrap(ip)
    return inner.is_global and not inner.is_multicast


def default_port(scheme: str) -> int:
    """The port a URL of ``scheme`` uses when it names none (443 for https, else 80)."""
    return 443 if scheme.lower() == "https" else 80


def allowance_opens(
    host: str, port: int | None, ip: IPAddress, target_port: int, *, scheme: str
) -> bool:
    """Whether an explicit allowance for ``host[:port]`` opens the non-public address ``ip`` on
    ``target_port`` (see the module doc).

    :param host: the allowance's canonical host: an address, or ``localhost`` (loopback only).
        A name or a wildcard never opens a non-public address.
    :param port: the allowance's port; ``None`` means the default port of ``scheme``.
    """
    inner = unwrap(ip)
    if host not in (str(ip), str(inner)) and not (host == "localhost" and inner.is_loopback):
        return False
    return target_port == (port if port is not None else default_port(scheme))

"""Which network addresses a plugin (or a package download) may reach without an explicit grant.

One rule for every outbound connection plughost makes on someone's behalf — ``ctx.http`` and
installs from a URL: only globally routable, non-multicast addresses, looking through the IPv6
forms that hide an IPv4 address (IPv4-mapped, 6to4, NAT64), so ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress
from typing import Final

__all__ = ["IPAddress", "is_public_address", "unwrap"]

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

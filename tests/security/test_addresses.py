from __future__ import annotations

import ipaddress

import pytest

from plughost.security.addresses import is_public_address, unwrap


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("224.0.0.1", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 wrapping 169.254.169.254
        ("64:ff9b::5db8:d822", True),  # NAT64 wrapping a public address
    ],
)
def test_public_addresses_look_through_ipv6_wrappings(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_unwrap_returns_the_hidden_ipv4_address() -> None:
    assert unwrap(ipaddress.ip_address("::ffff:10.0.0.1")) == ipaddress.ip_address("10.0.0.1")
    plain = ipaddress.ip_address("8.8.8.8")
    assert unwrap(plain) is plain

from __future__ import annotations

import ipaddress

import pytest

from plughost.security.addresses import allowance_opens, is_public_address, unwrap


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


@pytest.mark.parametrize(
    ("allowance", "ip", "port", "scheme", "opens"),
    [
        (("10.0.0.5", 8443), "10.0.0.5", 8443, "https", True),
        (("10.0.0.5", 8443), "10.0.0.5", 6379, "https", False),  # another port: never
        (("10.0.0.5", None), "10.0.0.5", 443, "https", True),  # no port: the default one
        (("10.0.0.5", None), "10.0.0.5", 80, "http", True),
        (("10.0.0.5", None), "10.0.0.5", 6379, "http", False),
        (("10.0.0.5", None), "10.0.0.6", 443, "https", False),
        (("127.0.0.1", 8080), "::ffff:127.0.0.1", 8080, "http", True),  # the wrapped address
        (("localhost", 8080), "127.0.0.2", 8080, "http", True),  # localhost: any loopback
        (("localhost", 8080), "10.0.0.5", 8080, "http", False),
        (("internal.example", 443), "10.0.0.5", 443, "https", False),  # a name never does
    ],
)
def test_an_allowance_opens_one_address_on_one_port(
    allowance: tuple[str, int | None], ip: str, port: int, scheme: str, opens: bool
) -> None:
    host, allowed_port = allowance
    assert allowance_opens(host, allowed_port, ipaddress.ip_address(ip), port,
                           scheme=scheme) is opens

"""The go-plugin style handshake line: accepted shapes, and clear refusals."""

from __future__ import annotations

import pytest

from plughost.errors import ProtocolError
from plughost.runtimes.grpc.handshake import Handshake, parse_line


def test_unix_and_tcp_lines_are_accepted() -> None:
    assert parse_line("1|1|unix|/tmp/x/plugin.sock|grpc\n", "p") == Handshake(
        1, 1, "unix", "/tmp/x/plugin.sock")
    hs = parse_line("1|1|tcp|127.0.0.1:4242", "p")
    assert hs.target == "127.0.0.1:4242"
    assert parse_line("1|1|unix|/s.sock|grpc|MIIB", "p").target == "unix:/s.sock"


@pytest.mark.parametrize(("line", "code", "words"), [
    ("listening on 4242", "protocol.handshake", "not a handshake"),
    ("2|1|unix|/s.sock|grpc", "protocol.version", "core protocol 2"),
    ("1|9|unix|/s.sock|grpc", "protocol.version", "app protocol 9"),
    ("x|1|unix|/s.sock", "protocol.handshake", "not numbers"),
    ("1|1|udp|/s.sock|grpc", "protocol.handshake", "unix or tcp"),
    ("1|1|unix|/s.sock|netrpc", "protocol.handshake", "protocol grpc"),
])
def test_anything_else_is_refused_naming_what_is_wrong(line: str, code: str, words: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_line(line, "p")
    assert info.value.code == code
    assert words in info.value.message
    if code == "protocol.version":
        assert "core protocol 1 / app protocol 1" in info.value.message

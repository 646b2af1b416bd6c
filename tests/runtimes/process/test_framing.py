from __future__ import annotations

import pytest

from plughost.errors import ProtocolError
from plughost.runtimes.process.framing import MAX_HEADER, FrameDecoder, encode_frame


def test_encode_frame_uses_lsp_content_length_header() -> None:
    assert encode_frame(b'{"a":1}') == b'Content-Length: 7\r\n\r\n{"a":1}'


def test_decoder_returns_every_frame_of_one_chunk_in_order() -> None:
    dec = FrameDecoder()
    chunk = encode_frame(b"one") + encode_frame(b"two") + encode_frame(b"three")
    assert dec.feed(chunk) == [b"one", b"two", b"three"]
    assert dec.buffered == 0


def test_decoder_reassembles_a_frame_fed_one_byte_at_a_time() -> None:
    dec = FrameDecoder()
    out: list[bytes] = []
    for b in encode_frame(b'{"x":"split"}') + encode_frame(b"[]"):
        out += dec.feed(bytes([b]))
    assert out == [b'{"x":"split"}', b"[]"]


def test_decoder_handles_header_split_at_the_blank_line() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"Content-Length: 2\r\n\r") == []
    assert dec.feed(b"\nhi") == [b"hi"]


def test_decoder_accepts_other_headers_in_any_case() -> None:
    dec = FrameDecoder()
    data = b"Content-Type: application/json\r\ncontent-length: 2\r\n\r\n{}"
    assert dec.feed(data) == [b"{}"]


def test_decoder_accepts_a_zero_length_body() -> None:
    assert FrameDecoder().feed(b"Content-Length: 0\r\n\r\n") == [b""]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"Content-Length: abc\r\n\r\n", "decimal"),
        (b"Content-Length: -1\r\n\r\n", "decimal"),
        (b"Content-Length: 1_0\r\n\r\n", "decimal"),
        (b"Content-Type: x\r\n\r\n{}", "no Content-Length"),
        (b"garbage line\r\n\r\n", "malformed frame header"),
    ],
)
def test_decoder_refuses_bad_headers_with_a_protocol_error(data: bytes, fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        FrameDecoder().feed(data)
    assert info.value.code == "protocol.frame"
    assert fragment in info.value.message


def test_decoder_refuses_oversized_frame_before_reading_its_body() -> None:
    dec = FrameDecoder(max_frame=100)
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"Content-Length: 101\r\n\r\n")  # no body sent yet: refused on the header
    assert "exceeds the limit of 100 bytes" in info.value.message


def test_decoder_refuses_plain_text_without_header_end() -> None:
    dec = FrameDecoder()
    with pytest.raises(ProtocolError) as info:
        dec.feed(b"hello from a print() call\n" * (MAX_HEADER // 20))
    assert "Logs belong on stderr" in info.value.message


def test_decoder_keeps_partial_body_until_complete() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"Content-Length: 10\r\n\r\n01234") == []
    assert dec.buffered == 5
    assert dec.feed(b"56789Content-Length: 1\r\n\r\nx") == [b"0123456789", b"x"]

"""The wire protocol shared by both ends: framing, envelopes, handshake, error codes."""

from __future__ import annotations

from typing import Any

import pytest

from plughost.core import wire as p
from plughost.core.wire import MAX_HEADER, FrameDecoder, encode_frame
from plughost.errors import PermissionDenied, PluginError, PluginTimeout, ProtocolError


def hello(**over: Any) -> dict[str, Any]:
    params = p.hello_params(plugin_id="demo", token="t0k", implementation="test")
    params.update(over)
    return {"jsonrpc": "2.0", "method": p.M.HELLO, "params": params}


def test_valid_hello_is_accepted() -> None:
    params = p.check_hello(hello(), plugin_id="demo", token="t0k")
    assert params["protocol"] == p.PROTOCOL_VERSION


def test_core_version_mismatch_names_both_versions() -> None:
    with pytest.raises(ProtocolError) as info:
        p.check_hello(hello(protocol=7), plugin_id="demo", token="t0k")
    assert info.value.code == "protocol.version"
    assert "core protocol 7" in info.value.message
    assert f"speaks {p.PROTOCOL_VERSION}" in info.value.message


def test_app_version_mismatch_is_reported_separately() -> None:
    with pytest.raises(ProtocolError) as info:
        p.check_hello(hello(app_protocol=9), plugin_id="demo", token="t0k")
    assert info.value.details["kind"] == "app"
    assert "app protocol 9" in info.value.message


@pytest.mark.parametrize(
    ("over", "fragment"),
    [({"token": "nope"}, "token"), ({"plugin_id": "other"}, "'other'")],
)
def test_hello_with_wrong_identity_is_refused(over: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.check_hello(hello(**over), plugin_id="demo", token="t0k")
    assert info.value.code == "protocol.handshake"
    assert fragment in info.value.message


def test_first_message_other_than_hello_is_refused() -> None:
    msg = {"jsonrpc": "2.0", "id": 1, "method": "host.emit", "params": {}}
    with pytest.raises(ProtocolError, match=r"\$/hello"):
        p.check_hello(msg, plugin_id="demo", token="t0k")


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"jsonrpc":"1.0"}', b"\xff\xfe"])
def test_decode_message_refuses_non_jsonrpc_bodies(body: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        p.decode_message(body)
    assert info.value.code == "protocol.json"


def test_errors_round_trip_to_the_matching_host_exception() -> None:
    denied = p.error_to_wire(PermissionDenied("fs:read:/etc not granted"))
    assert denied["code"] == p.WireCode.PERMISSION_DENIED
    back = p.error_from_wire(denied, plugin_id="demo", method="host.files.read")
    assert isinstance(back, PermissionDenied) and back.plugin_id == "demo"
    timeout = p.error_from_wire(p.error_to_wire(PluginTimeout("slow")), plugin_id="d", method="m")
    assert isinstance(timeout, PluginTimeout)
    plain = p.error_from_wire(p.error_to_wire(ValueError("bad")), plugin_id="d", method="m")
    assert type(plain) is PluginError
    assert plain.code == "plugin.error" and plain.details["type"] == "ValueError"


def test_hand_built_hello_is_the_same_json_as_the_encoder_would_write() -> None:
    import json

    params = p.hello_params(plugin_id="demo.plugin-1", token="ab12", implementation="x/1")
    assert json.loads(p.encode_hello(params)) == {
        "jsonrpc": "2.0",
        "method": p.M.HELLO,
        "params": params,
    }
    odd = {**params, "implementation": 'quote " and \\ and é'}
    assert json.loads(p.encode_hello(odd))["params"] == odd

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


def test_decoder_reads_a_batch_with_the_header_text_inside_a_body_and_a_frame_cut_short() -> None:
    # A read of many frames is cut at the header text in one go; a body that holds that text,
    # and the frame the read ends inside, are read the general way from where they start.
    tricky = b'{"log":"Content-Length: 5\r\n\r\n12345"}'
    chunk = encode_frame(b"[1]") + encode_frame(tricky) + encode_frame(b"[2]")
    last = encode_frame(b'{"x":3}')
    dec = FrameDecoder()
    assert dec.feed(chunk + last[:-3]) == [b"[1]", tricky, b"[2]"]
    assert dec.buffered == 4  # the body read so far (its header is read already)
    assert dec.feed(last[-3:] + encode_frame(b"[4]")) == [b'{"x":3}', b"[4]"]
    assert dec.buffered == 0


def test_decoder_refuses_an_oversized_frame_inside_a_batch_on_its_header() -> None:
    dec = FrameDecoder(max_frame=10)
    with pytest.raises(ProtocolError) as info:
        dec.feed(encode_frame(b"[1]") + b"Content-Length: 11\r\n\r\n")
    assert "exceeds the limit of 10 bytes" in info.value.message


def test_decode_messages_reads_each_body_and_stops_at_a_bad_one_in_order() -> None:
    good = [p.dumps(p.response(n, n)) for n in range(3)]
    assert [m["id"] for m in p.decode_messages(good)] == [0, 1, 2]
    seen: list[int] = []
    with pytest.raises(ProtocolError) as info:
        for msg in p.decode_messages([good[0], b"[1]", good[1]]):
            seen.append(msg["id"])
    assert seen == [0]  # the message before the bad body was handed out first
    assert info.value.code == "protocol.json"


def test_decoder_keeps_partial_body_until_complete() -> None:
    dec = FrameDecoder()
    assert dec.feed(b"Content-Length: 10\r\n\r\n01234") == []
    assert dec.buffered == 5
    assert dec.feed(b"56789Content-Length: 1\r\n\r\nx") == [b"0123456789", b"x"]


@pytest.mark.parametrize("data", ['{"a": 1', b"\xff\xfe", "nan?", "[" * 100_000])
def test_decode_json_refuses_what_is_not_json_with_protocol_json(data: str | bytes) -> None:
    from plughost.core.wire import decode_json
    from plughost.errors import ProtocolError

    with pytest.raises(ProtocolError) as caught:
        decode_json(data, "the answer", "See the docs.", plugin_id="p")
    assert caught.value.code == "protocol.json" and caught.value.plugin_id == "p"
    assert "the answer is not valid JSON" in str(caught.value), caught.value


def test_decode_json_reads_text_and_bytes_alike_and_empty_as_none() -> None:
    from plughost.core.wire import decode_json

    assert decode_json('{"é": [1, 2.5]}', "x", "") == decode_json(
        '{"é": [1, 2.5]}'.encode(), "x", "") == {"é": [1, 2.5]}
    assert decode_json("", "x", "") is None and decode_json(b"", "x", "") is None

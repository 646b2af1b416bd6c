"""Property-based tests of the process-plugin wire (plughost.core.wire): framing, message
decoding, the handshake check and error mapping. A peer is untrusted: whatever bytes it sends,
the host sees bodies, or ProtocolError with a protocol.* code — never another exception, and
never more buffered than one maximal frame.

Profiles: tests/conftest.py ("ci" by default; HYPOTHESIS_PROFILE=night for long runs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from plughost.core import wire
from plughost.errors import PlughostError, ProtocolError

MAX_FRAME = 4096

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=15)

HEADERS = st.one_of(
    st.builds(lambda n: b"Content-Length: %d" % n, st.integers(-10, 2 * MAX_FRAME)),
    st.builds(lambda n, v: b"content-LENGTH:%s%s" % (v, b"%d" % n),
              st.integers(0, 50), st.sampled_from([b"", b" ", b"\t", b"  "])),
    st.sampled_from([b"Content-Type: x\r\nContent-Length: 3", b"Content-Length: 1e3",
                     b"Content-Length: +5", b"Content-Length: 0x10", b"Content-Length:",
                     b"Content-Length: 3\r\nContent-Length: 4", b"no colon", b"",
                     b"Content-Length: 99999999999999999999999", b"Content-Length: \xff"]),
    st.binary(max_size=60),
)


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(stream)]:
        pieces.append(stream[start:point])
        start = point
    return pieces


@given(st.lists(st.binary(max_size=MAX_FRAME), max_size=6), st.lists(st.integers(0, 10**6)))
def test_encoded_frames_come_back_whole_however_the_stream_is_split(
    bodies: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(wire.encode_frame(b) for b in bodies)
    decoder = wire.FrameDecoder(MAX_FRAME)
    out: list[bytes] = []
    for piece in _split(stream, cuts):
        out.extend(decoder.feed(piece))
    assert out == bodies
    assert decoder.buffered == 0


@given(st.lists(st.one_of(st.binary(max_size=200),
                          st.builds(lambda h, b: h + b"\r\n\r\n" + b, HEADERS,
                                    st.binary(max_size=50))), max_size=8))
@example([b"Content-Length: 5\r\n\r\n", b"abc", b"de"])
@example([b"x" * (wire.MAX_HEADER + 1)])
@example([b"Content-Length: 99999999\r\n\r\n"])
def test_arbitrary_bytes_give_bodies_or_a_frame_error(chunks: list[bytes]) -> None:
    decoder = wire.FrameDecoder(MAX_FRAME)
    for chunk in chunks:
        try:
            bodies = decoder.feed(chunk)
        except ProtocolError as exc:
            assert exc.code == "protocol.frame"
            assert exc.message
            return  # the stream is unusable from here; the session ends
        assert all(len(b) <= MAX_FRAME for b in bodies)
        # never more than one header and one maximal body held back
        assert decoder.buffered <= wire.MAX_HEADER + 4 + MAX_FRAME


def _json(value: Any) -> bytes:
    # the stdlib, not wire.dumps: another test may have switched the wire to orjson, which
    # cannot encode integers past 64 bits (decoding them is what is tested here)
    return json.dumps(value).encode()


@given(st.one_of(st.binary(max_size=300), JSON_VALUES.map(_json),
                 st.builds(lambda p: _json({"jsonrpc": "2.0", **p}),
                           st.dictionaries(st.sampled_from(["id", "method", "params",
                                                            "result", "error"]),
                                           JSON_VALUES, max_size=4))))
@example(b"[" * 100_000 + b"]" * 100_000)
@example(b'{"jsonrpc": "2.0", "params": ' + b"[" * 50_000 + b"]" * 50_000 + b"}")
@example(b"\xff\xfe")
@example(b'{"jsonrpc": "2.0", "id": NaN}')
def test_frame_bodies_decode_to_a_message_or_protocol_json(body: bytes) -> None:
    try:
        msg = wire.decode_message(body)
    except ProtocolError as exc:
        assert exc.code == "protocol.json"
        return
    assert isinstance(msg, dict) and msg["jsonrpc"] == "2.0"


HELLO_FIELDS = st.fixed_dictionaries({}, optional={
    "protocol": st.one_of(st.just(wire.PROTOCOL_VERSION), JSON_VALUES),
    "app_protocol": st.one_of(st.just(wire.APP_PROTOCOL_VERSION), JSON_VALUES),
    "token": st.one_of(st.just("tok"), st.text(max_size=10), JSON_VALUES),
    "plugin_id": st.one_of(st.just("p"), JSON_VALUES),
})


@given(st.one_of(
    st.builds(lambda params, method: {"jsonrpc": "2.0", "method": method, "params": params},
              st.one_of(HELLO_FIELDS, JSON_VALUES), st.sampled_from([wire.M.HELLO, "x", ""])),
    st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4)))
@example({"jsonrpc": "2.0", "method": wire.M.HELLO,
          "params": {"protocol": wire.PROTOCOL_VERSION, "app_protocol": wire.APP_PROTOCOL_VERSION,
                     "token": "tok", "plugin_id": "p"}})
@example({"jsonrpc": "2.0", "method": wire.M.HELLO,
          "params": {"protocol": wire.PROTOCOL_VERSION, "app_protocol": wire.APP_PROTOCOL_VERSION,
                     "token": "t\udc80k", "plugin_id": "p"}})
def test_the_handshake_check_accepts_or_names_a_protocol_error(msg: dict[str, Any]) -> None:
    try:
        params = wire.check_hello(msg, plugin_id="p", token="tok")
    except ProtocolError as exc:
        assert exc.code in ("protocol.handshake", "protocol.version")
        return
    assert params["token"] == "tok" and params["plugin_id"] == "p"


@given(JSON_VALUES)
@example({"code": -32000, "message": "x", "data": {"code": "permission.denied"}})
@example({"code": "not a number", "data": []})
def test_any_wire_error_maps_to_a_plughost_error(err: Any) -> None:
    mapped = wire.error_from_wire(err, plugin_id="p", method="plugin.call")
    assert isinstance(mapped, PlughostError)
    assert mapped.code and mapped.message


@pytest.mark.parametrize("exc", [ValueError("x"), RecursionError(), KeyError("k"),
                                 ProtocolError("p", code="protocol.json")])
def test_any_exception_maps_to_a_json_rpc_error_object(exc: BaseException) -> None:
    err = wire.error_to_wire(exc)
    assert isinstance(err["code"], int) and isinstance(err["message"], str)
    wire.dumps(err)  # serialisable as it is

from __future__ import annotations

from typing import Any

import pytest

from plughost.errors import PermissionDenied, PluginError, PluginTimeout, ProtocolError
from plughost.runtimes.process import protocol as p


def hello(**over: Any) -> dict[str, Any]:
    params = p.hello_params(plugin_id="demo", token="t0k", implementation="test")
    params.update(over)
    return {"jsonrpc": "2.0", "method": p.HELLO, "params": params}


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
        "method": p.HELLO,
        "params": params,
    }
    odd = {**params, "implementation": 'quote " and \\ and é'}
    assert json.loads(p.encode_hello(odd))["params"] == odd

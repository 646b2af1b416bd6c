"""Which permission each ``host.*`` request needs at the process boundary."""

from __future__ import annotations

from typing import Any

import pytest

from plughost.runtimes.process import protocol as p


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        ("host.emit", {"topic": "a.b"}, ("events:emit", "a.b")),
        ("host.execute", {"command": "x.y"}, ("commands:execute", "x.y")),
        ("host.files.read", {"path": "/etc/passwd"}, ("fs:read", "/etc/passwd")),
        ("host.files.write", {"path": "/tmp/x", "data": ""}, ("fs:write", "/tmp/x")),
        (
            "host.http.request",
            {"url": "https://api.example.com/v1"},
            ("net", "api.example.com:443"),
        ),
        ("host.http.request", {"url": "http://h:8080/"}, ("net", "h:8080")),
        ("host.storage.get", {"key": "k"}, ("storage", "demo")),
        ("host.config.get", {}, None),
        ("host.log", {"message": "x"}, None),
    ],
)
def test_required_permission_maps_each_host_method_to_its_scope(
    method: str, params: dict[str, Any], expected: tuple[str, str] | None
) -> None:
    assert p.required_permission(method, params, "demo") == expected


def test_required_permission_refuses_missing_target() -> None:
    with pytest.raises(ValueError, match="topic"):
        p.required_permission("host.emit", {}, "demo")
    with pytest.raises(ValueError, match="absolute http"):
        p.required_permission("host.http.request", {"url": "file:///etc/passwd"}, "demo")

from __future__ import annotations

import pytest

from plughost.errors import ScopeError
from plughost.security.scopes import Scope, canonical_host, parse_scope, parse_scopes


@pytest.mark.parametrize(
    ("text", "kind", "pattern", "port"),
    [
        ("fs:read:/srv/data", "fs:read", "/srv/data", None),
        ("fs:write:/srv/data/../out", "fs:write", "/srv/out", None),
        ("fs:read:*", "fs:read", "/", None),
        ("net:api.example.com", "net", "api.example.com", None),
        ("net:API.Example.com.:443", "net", "api.example.com", 443),
        ("net:*.example.com", "net", "*.example.com", None),
        ("net:[::1]:8080", "net", "::1", 8080),
        ("net:127.0.0.1:*", "net", "127.0.0.1", None),
        ("storage:shared-cache", "storage", "shared-cache", None),
        ("events:emit:user.*", "events:emit", "user.*", None),
        ("events:subscribe:user.**", "events:subscribe", "user.**", None),
        ("commands:execute:music.search", "commands:execute", "music.search", None),
        ("commands:register:music.*", "commands:register", "music.*", None),
        ("process:spawn", "process:spawn", "", None),
        ("env:MYAPP_*", "env", "MYAPP_*", None),
    ],
)
def test_parse_scope_accepts_every_kind(
    text: str, kind: str, pattern: str, port: int | None
) -> None:
    scope = parse_scope(text)
    assert (scope.kind, scope.pattern, scope.port, scope.deny) == (kind, pattern, port, False)
    assert parse_scope(str(scope)) == scope  # the canonical text round-trips


def test_bang_prefix_makes_a_deny_rule() -> None:
    scope = parse_scope("!fs:read:/etc")
    assert scope.deny and str(scope) == "!fs:read:/etc"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("fs:read:relative/dir", "absolute path"),
        ("disk:format", "unknown permission kind"),
        ("net:", "needs a target"),
        ("net:example.com:99999", "port"),
        ("net:::1", "brackets"),
        ("net:bad host", "not a host name"),
        ("events:emit:a..b", "dot-separated"),
        ("storage:a/b", "letters, digits"),
        ("", "empty"),
    ],
)
def test_parse_scope_refuses_malformed_scopes_with_a_clear_message(
    text: str, fragment: str
) -> None:
    with pytest.raises(ScopeError) as info:
        parse_scope(text)
    assert info.value.code == "permission.scope"
    assert fragment in str(info.value)


def test_parse_scopes_reports_every_bad_scope_with_its_index() -> None:
    with pytest.raises(ScopeError) as info:
        parse_scopes(["fs:read:/ok", "nope", "net:example.com", "fs:write:rel"], plugin_id="p")
    assert [p.path for p in info.value.problems] == ["permissions[1]", "permissions[3]"]
    assert info.value.plugin_id == "p"


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("Example.COM.", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
    ],
)
def test_canonical_host_normalises_numeric_and_unicode_forms(host: str, canonical: str) -> None:
    assert canonical_host(host) == canonical


def test_net_wildcard_matches_subdomains_but_not_the_apex_or_ips() -> None:
    scope = parse_scope("net:*.example.com")
    assert scope.matches("a.example.com:443")
    assert scope.matches("a.b.example.com:80")
    assert not scope.matches("example.com:443")
    assert not scope.matches("evilexample.com:443")


def test_net_port_is_enforced_when_given() -> None:
    scope = parse_scope("net:api.example.com:443")
    assert scope.matches("api.example.com:443")
    assert not scope.matches("api.example.com:80")


def test_topic_wildcards_match_segments() -> None:
    one = Scope("events:emit", "user.*")
    assert one.matches("user.created") and not one.matches("user.a.b") and not one.matches("user")
    many = Scope("events:emit", "user.**")
    assert many.matches("user") and many.matches("user.a.b")
    assert Scope("events:emit", "*").matches("anything.at.all")

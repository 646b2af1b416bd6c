from __future__ import annotations

import os
from pathlib import Path

import pytest

from plughost.errors import OperationRefused, PermissionDenied, ScopeError
from plughost.security.audit import AuditLog
from plughost.security.permissions import (
    PermissionManager,
    PermissionSet,
    approve_declared_requests,
    require_approval,
)
from plughost.security.scopes import parse_scope


@pytest.fixture
def manager(tmp_path: Path) -> PermissionManager:
    with PermissionManager(tmp_path / "security.db") as m:
        yield m


# (granted scope, allowed (kind, target), denied (kind, target)) for every kind
CASES = [
    ("fs:read:{d}", ("fs:read", "{d}/a.txt"), ("fs:read", "/elsewhere/a.txt")),
    ("fs:write:{d}", ("fs:write", "{d}/sub/b.txt"), ("fs:read", "{d}/sub/b.txt")),
    ("net:api.example.com:443", ("net", "api.example.com:443"), ("net", "api.example.com:8443")),
    ("net:*.example.com", ("net", "x.example.com:80"), ("net", "example.org:80")),
    ("storage:shared", ("storage", "shared"), ("storage", "other")),
    ("events:emit:user.*", ("events:emit", "user.created"), ("events:emit", "order.created")),
    ("events:subscribe:user.**", ("events:subscribe", "user.a.b"), ("events:subscribe", "admin")),
    (
        "commands:execute:music.search",
        ("commands:execute", "music.search"),
        ("commands:execute", "music.delete"),
    ),
    (
        "commands:register:music.*",
        ("commands:register", "music.play"),
        ("commands:register", "video.play"),
    ),
    ("process:spawn", ("process:spawn", ""), ("env", "HOME")),
    ("env:MYAPP_*", ("env", "MYAPP_TOKEN"), ("env", "HOME")),
]


@pytest.mark.parametrize(("scope", "allowed", "denied"), CASES)
def test_every_scope_kind_allows_its_target_and_denies_others(
    manager: PermissionManager,
    tmp_path: Path,
    scope: str,
    allowed: tuple[str, str],
    denied: tuple[str, str],
) -> None:
    d = str(tmp_path)
    check = manager.checker("p")
    kind, target = allowed
    with pytest.raises(PermissionDenied):  # deny by default: nothing granted yet
        check(kind, target.format(d=d))
    manager.grant("p", scope.format(d=d))
    check(kind, target.format(d=d))
    kind, target = denied
    with pytest.raises(PermissionDenied) as info:
        check(kind, target.format(d=d))
    assert info.value.code == "permission.denied"
    assert "plughost perms grant p" in str(info.value)


def test_deny_rule_beats_a_broader_allow(manager: PermissionManager) -> None:
    manager.grant("p", "fs:read:/")
    manager.grant("p", "!fs:read:/etc")
    assert manager.allowed("p", "fs:read", "/usr/lib")
    with pytest.raises(PermissionDenied, match="denied by rule !fs:read:/etc"):
        manager.check("p", "fs:read", "/etc/passwd")


def test_dotdot_is_resolved_before_the_check(manager: PermissionManager, tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    manager.grant("p", f"fs:read:{tmp_path}/ok")
    assert manager.allowed("p", "fs:read", f"{tmp_path}/ok/file")
    assert not manager.allowed("p", "fs:read", f"{tmp_path}/ok/../secret")


def test_symlink_out_of_a_granted_dir_is_refused(
    manager: PermissionManager, tmp_path: Path
) -> None:
    granted = tmp_path / "granted"
    granted.mkdir()
    (tmp_path / "secret.txt").write_text("s")
    (granted / "link").symlink_to(tmp_path / "secret.txt")
    manager.grant("p", f"fs:read:{granted}")
    with pytest.raises(PermissionDenied):
        manager.check("p", "fs:read", str(granted / "link"))


def test_proc_sys_dev_need_a_grant_naming_them(manager: PermissionManager) -> None:
    manager.grant("p", "fs:read:/")
    for path in ("/proc/self/environ", "/sys/kernel", "/dev/mem"):
        assert not manager.allowed("p", "fs:read", path)
    manager.grant("p", "fs:read:/proc")
    assert manager.allowed("p", "fs:read", "/proc/cpuinfo")
    assert not manager.allowed("p", "fs:read", "/dev/mem")


def test_revoke_takes_effect_for_checkers_handed_out_earlier(manager: PermissionManager) -> None:
    check = manager.checker("p")
    manager.grant("p", "events:emit:a.*")
    check("events:emit", "a.b")  # caches an allow decision
    manager.revoke("p", "events:emit:a.*")
    with pytest.raises(PermissionDenied):
        check("events:emit", "a.b")


def test_revoking_what_was_never_granted_is_refused_and_changes_nothing(
    manager: PermissionManager,
) -> None:
    manager.grant("p", "storage:x")
    with pytest.raises(OperationRefused, match="not granted"):
        manager.revoke("p", "storage:y")
    assert [str(s) for s in manager.grants("p")] == ["storage:x"]


def test_grants_persist_across_managers(tmp_path: Path) -> None:
    with PermissionManager(tmp_path / "s.db") as m:
        m.grant("p", "net:example.com")
    with PermissionManager(tmp_path / "s.db") as m:
        assert [str(s) for s in m.grants("p")] == ["net:example.com"]
        assert m.allowed("p", "net", "example.com:443")


def test_default_policy_grants_declared_scopes_at_install(manager: PermissionManager) -> None:
    manager.declare("p", ["storage:shared", "events:emit:x.*"])
    assert {str(s) for s in manager.grants("p")} == {"storage:shared", "events:emit:x.*"}
    rows = manager.audit.query(plugin="p", action="grant")
    assert {r.actor for r in rows} == {"policy:grant_declared_at_install"}


def test_require_approval_policy_grants_nothing_until_the_operator_does(tmp_path: Path) -> None:
    with PermissionManager(tmp_path / "s.db", policy=require_approval) as m:
        m.declare("p", ["storage:shared"])
        assert m.grants("p") == []
        assert not m.allowed("p", "storage", "shared")
        m.grant("p", "storage:shared")
        assert m.allowed("p", "storage", "shared")


def test_declare_refuses_invalid_scopes_and_records_nothing(manager: PermissionManager) -> None:
    with pytest.raises(ScopeError, match="permissions\\[1\\]"):
        manager.declare("p", ["storage:ok", "fs:read:relative"])
    assert manager.declared("p") == [] and manager.grants("p") == []


def test_requests_are_recorded_and_resolved_by_the_operator(manager: PermissionManager) -> None:
    req = manager.request("p", "net:api.example.com", "to fetch album art")
    assert req.status == "pending"
    assert not manager.allowed("p", "net", "api.example.com:443")
    done = manager.resolve(req.id, approve=True)
    assert done.status == "approved" and done.resolved_by == "operator"
    assert manager.allowed("p", "net", "api.example.com:443")
    with pytest.raises(OperationRefused, match="already approved"):
        manager.resolve(req.id, approve=False)
    actions = [r.action for r in manager.audit.query(plugin="p")]
    assert actions == ["request", "resolve", "grant"]


def test_request_policy_can_approve_declared_scopes(tmp_path: Path) -> None:
    with PermissionManager(
        tmp_path / "s.db", policy=require_approval, request_policy=approve_declared_requests
    ) as m:
        m.declare("p", ["storage:shared"])
        assert m.request("p", "storage:shared", "cache").status == "approved"
        assert m.request("p", "storage:other", "why not").status == "pending"
        assert m.allowed("p", "storage", "shared") and not m.allowed("p", "storage", "other")


def test_request_without_reason_is_refused(manager: PermissionManager) -> None:
    with pytest.raises(OperationRefused, match="reason"):
        manager.request("p", "storage:x", "  ")
    assert manager.requests("p") == []


def test_denials_grants_and_revokes_write_audit_rows(manager: PermissionManager) -> None:
    manager.grant("p", "storage:a")
    manager.revoke("p", "storage:a")
    with pytest.raises(PermissionDenied):
        manager.check("p", "storage", "a")
    rows = manager.audit.query(plugin="p")
    assert [(r.action, r.decision) for r in rows] == [
        ("grant", "granted"),
        ("revoke", "revoked"),
        ("check", "deny"),
    ]
    deny = rows[-1]
    assert (deny.kind, deny.target, deny.severity) == ("storage", "a", "warning")
    assert "no grant covers" in deny.reason


def test_implicit_grants_are_beaten_by_operator_deny_rules(manager: PermissionManager) -> None:
    manager.set_implicit("p", ["storage:p"])
    assert manager.allowed("p", "storage", "p")
    assert manager.grants("p") == []
    manager.grant("p", "!storage:p")
    assert not manager.allowed("p", "storage", "p")


def test_permission_set_caches_and_explains() -> None:
    pset = PermissionSet([parse_scope("env:A*")], [parse_scope("!env:AB")])
    assert pset.check("env", "AX") and pset.check("env", "AX")
    assert pset.explain("env", "AB") == (False, parse_scope("!env:AB"), "denied by rule !env:AB")
    assert not pset.check("unknown", "x")


def test_audit_log_queries_by_plugin_kind_severity_and_time(tmp_path: Path) -> None:
    now = [1000.0]
    with AuditLog(tmp_path / "a.db", clock=lambda: now[0]) as log:
        log.record("a", "check", "net", target="x:1", decision="deny", severity="warning")
        now[0] = 2000.0
        log.record("b", "grant", "fs:read", scope="fs:read:/x", decision="granted")
        now[0] = 3000.0
        log.record("a", "check", "net", target="y:1", decision="deny", severity="critical")
        assert [e.target for e in log.query(plugin="a")] == ["x:1", "y:1"]
        assert [e.plugin for e in log.query(kind="fs:read")] == ["b"]
        assert [e.target for e in log.query(min_severity="error")] == ["y:1"]
        assert [e.plugin for e in log.query(since=1500, until=2500)] == ["b"]
        assert len(log.query(limit=2)) == 2
        with pytest.raises(ValueError, match="severity"):
            log.query(min_severity="loud")
    assert os.path.exists(tmp_path / "a.db")


def test_host_checker_matches_the_communication_hook_shape(manager: PermissionManager) -> None:
    check = manager.host_checker()
    check(None, "events:emit", "anything")  # the host itself is never checked
    manager.grant("p", "events:emit:music.#")
    manager.grant("p", "channels:open:lyrics.*")
    check("p", "events:emit", "music.track.changed")
    check("p", "channels:open", "lyrics.stream")
    with pytest.raises(PermissionDenied):
        check("p", "commands:execute", "music.play")
    assert manager.audit.query(plugin="p", decision="deny")[-1].kind == "commands:execute"

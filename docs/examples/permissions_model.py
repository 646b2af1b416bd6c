"""docs/permissions.md: declare, grant, deny, request and audit."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from plughost.errors import PermissionDenied
from plughost.security.permissions import PermissionManager, require_approval


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        perms = PermissionManager(Path(home) / "security.db", policy=require_approval)
        perms.declare("music", ["fs:read:/srv/music", "net:api.example.com:443"])
        before = perms.allowed("music", "fs:read", "/srv/music/a.flac")   # nothing granted yet

        perms.grant("music", "fs:read:/srv")                              # operator grants
        perms.grant("music", "!fs:read:/srv/private")                     # deny rule wins
        check = perms.checker("music")                                    # the hook shape
        check("fs:read", "/srv/music/../music/a.flac")                    # resolved first
        try:
            check("fs:read", "/srv/private/keys")
        except PermissionDenied as exc:
            denied = exc.details["reason"]

        request = perms.request("music", "net:api.example.com:443", "fetch cover art")
        perms.resolve(request.id, approve=True)                           # operator approves

        result = {
            "before": before,
            "denied": denied,
            "net": perms.allowed("music", "net", "api.example.com:443"),
            "audit": [(e.action, e.decision) for e in perms.audit.query(plugin="music")],
        }
        perms.close()
        return result

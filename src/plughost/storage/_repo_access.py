"""Repository part: permission grants and requests, API tokens, trusted publisher keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import fields, replace
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from plughost.errors import OperationRefused, RecordExists, RecordNotFound
from plughost.storage._repo_base import read_records, record_columns, to_record
from plughost.storage._repo_changes import ChangeLog
from plughost.storage.models import ApiTokenRow, GrantRow, PermissionRequestRow, TrustedKeyRow
from plughost.storage.records import ApiToken, Grant, PermissionRequest, TrustedKey

_TOKEN_TOUCH_INTERVAL = timedelta(seconds=60)
_GRANTS_OF = (record_columns(Grant, GrantRow).where(GrantRow.plugin_id == bindparam("plugin_id"))
              .order_by(GrantRow.id))
_ACTIVE_GRANTS_OF = _GRANTS_OF.where(GrantRow.revoked_at.is_(None))


def hash_token(secret: str) -> str:
    """The SHA-256 hex digest stored for an API token secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccessRecords(ChangeLog):
    """Who may do what: grants, permission requests, API tokens, trusted keys."""

    # -- grants and permission requests ----------------------------------------------------

    def grant(self, plugin_id: str, scope: str, *, granted_by: str = "") -> Grant:
        """Grant ``scope`` to the plugin; returns the existing grant if already in force."""
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            return self._grant(s, plugin_id, scope, granted_by)

    def _grant(self, s: Session, plugin_id: str, scope: str, granted_by: str) -> Grant:
        existing = s.scalars(
            select(GrantRow).where(GrantRow.plugin_id == plugin_id, GrantRow.scope == scope,
                                   GrantRow.revoked_at.is_(None))
        ).first()
        if existing is not None:
            return to_record(Grant, existing)
        row = GrantRow(plugin_id=plugin_id, scope=scope, granted_by=granted_by,
                       granted_at=self._now())
        s.add(row)
        s.flush()
        self._record_change(s, "grant", plugin_id, "grant", {"scope": scope})
        return to_record(Grant, row)

    def revoke_grant(self, plugin_id: str, scope: str, *, revoked_by: str = "") -> bool:
        """Revoke an active grant (kept as history). Returns False when none was in force."""
        with self._tx() as s:
            rows = list(s.scalars(
                select(GrantRow).where(GrantRow.plugin_id == plugin_id, GrantRow.scope == scope,
                                       GrantRow.revoked_at.is_(None))
            ))
            for row in rows:
                row.revoked_at = self._now()
                row.revoked_by = revoked_by
            s.flush()
            if rows:
                self._record_change(s, "grant", plugin_id, "revoke", {"scope": scope})
            return bool(rows)

    def list_grants(self, plugin_id: str, *, include_revoked: bool = False) -> list[Grant]:
        """The plugin's grants, oldest first."""
        stmt = _GRANTS_OF if include_revoked else _ACTIVE_GRANTS_OF
        with self._tx(write=False) as s:
            return read_records(s, Grant, stmt, {"plugin_id": plugin_id})

    def request_permission(
        self, plugin_id: str, scope: str, *, reason: str = ""
    ) -> PermissionRequest:
        """Record that the plugin asks for ``scope``; a pending request for it is reused."""
        with self._tx() as s:
            self._plugin_row(s, plugin_id)
            existing = s.scalars(
                select(PermissionRequestRow).where(
                    PermissionRequestRow.plugin_id == plugin_id,
                    PermissionRequestRow.scope == scope,
                    PermissionRequestRow.status == "pending",
                )
            ).first()
            if existing is not None:
                return to_record(PermissionRequest, existing)
            row = PermissionRequestRow(plugin_id=plugin_id, scope=scope, reason=reason,
                                       status="pending", requested_at=self._now())
            s.add(row)
            s.flush()
            self._record_change(s, "permission_request", plugin_id, "request",
                                {"id": row.id, "scope": scope})
            return to_record(PermissionRequest, row)

    def list_permission_requests(
        self, *, plugin_id: str | None = None, status: str | None = "pending"
    ) -> list[PermissionRequest]:
        """Permission requests, oldest first; ``status=None`` lists every status."""
        stmt = select(PermissionRequestRow).order_by(PermissionRequestRow.id)
        if plugin_id is not None:
            stmt = stmt.where(PermissionRequestRow.plugin_id == plugin_id)
        if status is not None:
            stmt = stmt.where(PermissionRequestRow.status == status)
        with self._tx(write=False) as s:
            return [to_record(PermissionRequest, r) for r in s.scalars(stmt)]

    def decide_permission_request(
        self, request_id: int, *, approve: bool, decided_by: str = ""
    ) -> PermissionRequest:
        """Approve (granting the scope in the same transaction) or deny a pending request.

        :raises RecordNotFound: for an unknown request id.
        :raises OperationRefused: when the request was already decided.
        """
        with self._tx() as s:
            row = s.get(PermissionRequestRow, request_id, with_for_update=True)
            if row is None:
                raise RecordNotFound(f"there is no permission request {request_id}")
            if row.status != "pending":
                raise OperationRefused(
                    f"permission request {request_id} was already {row.status}",
                    plugin_id=row.plugin_id,
                )
            row.status = "approved" if approve else "denied"
            row.decided_by = decided_by
            row.decided_at = self._now()
            s.flush()
            self._record_change(s, "permission_request", row.plugin_id,
                                "approve" if approve else "deny",
                                {"id": row.id, "scope": row.scope})
            if approve:
                self._grant(s, row.plugin_id, row.scope, decided_by)
            s.flush()
            return to_record(PermissionRequest, row)

    # -- API tokens ------------------------------------------------------------------------

    def create_token(
        self, name: str, role: str, *, expires_at: datetime | None = None
    ) -> tuple[ApiToken, str]:
        """Create a token; returns its record and the secret (shown once, stored hashed).

        :raises RecordExists: when a token with that name exists (revoked ones included).
        """
        secret = "ph_" + secrets.token_urlsafe(32)
        with self._tx() as s:
            if s.scalars(select(ApiTokenRow.id).where(ApiTokenRow.name == name)).first():
                raise RecordExists(f"a token named {name!r} exists; choose another name")
            row = ApiTokenRow(name=name, role=role, token_hash=hash_token(secret),
                              created_at=self._now(), expires_at=expires_at)
            s.add(row)
            self._flush(s, f"a token named {name!r} exists; choose another name", None)
            self._record_change(s, "token", name, "create", {"role": role})
            return to_record(ApiToken, row), secret

    def verify_token(self, secret: str) -> ApiToken | None:
        """The active, unexpired token with that secret, or ``None``. Records its last use
        (at most once a minute, so busy clients do not write on every request)."""
        now = self._now()
        digest = hash_token(secret)
        with self._tx(write=False) as s:
            row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.token_hash == digest)).first()
            if row is None or row.revoked_at is not None:
                return None
            if row.expires_at is not None and row.expires_at <= now:
                return None
            token = to_record(ApiToken, row)
        if token.last_used_at is None or now - token.last_used_at >= _TOKEN_TOUCH_INTERVAL:
            # A separate, short write: verifying stays a read (no SQLite write lock) mostly.
            with self._tx() as s:
                s.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == token.id).values(last_used_at=now)
                )
            token = replace(token, last_used_at=now)
        return token

    def list_tokens(self, *, include_revoked: bool = False) -> list[ApiToken]:
        """Tokens by name (never their secrets)."""
        stmt = select(ApiTokenRow).order_by(ApiTokenRow.name)
        if not include_revoked:
            stmt = stmt.where(ApiTokenRow.revoked_at.is_(None))
        with self._tx(write=False) as s:
            return [to_record(ApiToken, r) for r in s.scalars(stmt)]

    def revoke_token(self, name: str) -> bool:
        """Revoke a token by name. Returns False when no active token has that name."""
        with self._tx() as s:
            row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            s.flush()
            self._record_change(s, "token", name, "revoke")
            return True

    # -- trusted keys ----------------------------------------------------------------------

    def add_trusted_key(self, key: TrustedKey) -> TrustedKey:
        """Add a publisher key to the trust store.

        :raises RecordExists: when the key id is known — revoked keys stay revoked; publish a
            new key instead.
        """
        with self._tx() as s:
            existing = s.get(TrustedKeyRow, key.key_id)
            if existing is not None:
                state = "revoked" if existing.revoked_at is not None else "trusted"
                raise RecordExists(
                    f"key {key.key_id!r} is already in the trust store ({state}); a revoked key "
                    "cannot be trusted again, use a new key"
                )
            values = {f.name: getattr(key, f.name) for f in fields(TrustedKey)}
            values["added_at"] = key.added_at or self._now()
            row = TrustedKeyRow(**values)
            s.add(row)
            self._flush(s, f"key {key.key_id!r} is already in the trust store", None)
            self._record_change(s, "trusted_key", key.key_id, "add")
            return to_record(TrustedKey, row)

    def get_trusted_key(self, key_id: str) -> TrustedKey | None:
        """A key of the trust store (revoked ones included), or ``None``."""
        with self._tx(write=False) as s:
            row = s.get(TrustedKeyRow, key_id)
            return None if row is None else to_record(TrustedKey, row)

    def list_trusted_keys(self, *, include_revoked: bool = False) -> list[TrustedKey]:
        """Keys of the trust store ordered by id."""
        stmt = select(TrustedKeyRow).order_by(TrustedKeyRow.key_id)
        if not include_revoked:
            stmt = stmt.where(TrustedKeyRow.revoked_at.is_(None))
        with self._tx(write=False) as s:
            return [to_record(TrustedKey, r) for r in s.scalars(stmt)]

    def revoke_trusted_key(self, key_id: str) -> bool:
        """Revoke a key. Returns False when it is unknown or already revoked."""
        with self._tx() as s:
            row = s.get(TrustedKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            s.flush()
            self._record_change(s, "trusted_key", key_id, "revoke")
            return True

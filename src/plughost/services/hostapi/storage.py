"""``ctx.storage``: the plugin's key-value namespace, every call checked against ``storage:<ns>``.

The plugin's own namespace (its id) is granted implicitly; other namespaces (shared ones) need a
``storage:<ns>`` grant, reached with :meth:`StorageService.with_namespace`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from plughost.security.permissions import PermissionManager
from plughost.storage.kv import KeyValueBackend, Transaction

__all__ = ["StorageService"]


class StorageService:
    """Key-value storage for one plugin in one namespace.

    :param plugin_id: the plugin.
    :param permissions: checks ``storage:<namespace>`` on every call (denials are audited).
    :param kv: the backing store.
    :param namespace: defaults to the plugin id.
    """

    __slots__ = ("_check", "_kv", "_perms", "namespace", "plugin_id")

    def __init__(
        self,
        plugin_id: str,
        permissions: PermissionManager,
        kv: KeyValueBackend,
        namespace: str | None = None,
    ) -> None:
        self.plugin_id = plugin_id
        self.namespace = namespace or plugin_id
        self._perms = permissions
        self._kv = kv
        # Bound once: the hot path is one closure call and one cached dict lookup.
        self._check = permissions.checker(plugin_id)

    def with_namespace(self, name: str) -> StorageService:
        """The same service on another namespace (needs a ``storage:<name>`` grant to use)."""
        return StorageService(self.plugin_id, self._perms, self._kv, name)

    def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key`` or ``default``."""
        self._check("storage", self.namespace)
        return self._kv.get(self.namespace, key, default)

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value."""
        self._check("storage", self.namespace)
        self._kv.set(self.namespace, key, value)

    def delete(self, key: str) -> bool:
        """Remove a key; ``True`` if it existed."""
        self._check("storage", self.namespace)
        return self._kv.delete(self.namespace, key)

    def clear(self) -> None:
        """Remove every key in the namespace."""
        self._check("storage", self.namespace)
        self._kv.clear(self.namespace)

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys that exist."""
        self._check("storage", self.namespace)
        return self._kv.get_many(self.namespace, keys)

    def set_many(self, items: Mapping[str, Any]) -> None:
        """Store several values atomically."""
        self._check("storage", self.namespace)
        self._kv.set_many(self.namespace, items)

    def keys(self, prefix: str = "") -> list[str]:
        """Keys, sorted, optionally by prefix."""
        self._check("storage", self.namespace)
        return self._kv.keys(self.namespace, prefix)

    def create_index(self, name: str, key_path: str) -> None:
        """Index values by the field at dotted ``key_path``."""
        self._check("storage", self.namespace)
        self._kv.create_index(self.namespace, name, key_path)

    def query_by_index(self, name: str, value: Any) -> dict[str, Any]:
        """``{key: value}`` of entries whose indexed field equals ``value``."""
        self._check("storage", self.namespace)
        return self._kv.query_by_index(self.namespace, name, value)

    def transaction(self) -> Transaction:
        """A buffered all-or-nothing transaction (``with ctx.storage.transaction() as tx:``)."""
        self._check("storage", self.namespace)
        return self._kv.transaction(self.namespace)

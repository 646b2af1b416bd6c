"""Plugin key-value storage in the plughost database: what every node of a cluster shares.

:class:`DatabaseKeyValueStore` satisfies :class:`~plughost.storage.kv.KeyValueBackend` over the
``plugin_kv``, ``plugin_kv_indexes`` and ``plugin_kv_index_entries`` tables (migration 0004), on
SQLite, PostgreSQL and MySQL/MariaDB alike. Keys and indexed values are matched by their
SHA-256, so a 1,024-character key fits MySQL's index limit and MySQL's case-insensitive
collation cannot make ``"A"`` and ``"a"`` one key. Each write is one database transaction;
index definitions are read from the database on every use, so an index one node creates is
maintained by the writes of every other node at once.

Two nodes writing the same new key at the same instant may collide on the primary key; the
loser retries its whole transaction (a few times) and wins or loses as a whole.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Table, delete, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from plughost.errors import KeyValueError
from plughost.storage.db import Database
from plughost.storage.kv import (
    MISSING,
    Transaction,
    check_index_spec,
    check_key,
    check_text,
    dump,
    extract,
    prepare_ops,
    unknown_index,
)
from plughost.storage.models import (
    NAMESPACE_LEN,
    PluginKVIndexEntryRow,
    PluginKVIndexRow,
    PluginKVRow,
)

__all__ = ["DatabaseKeyValueStore", "import_sqlite_kv"]

_RETRIES: Final = 5
_KV: Table = PluginKVRow.__table__  # type: ignore[assignment]
_IDX: Table = PluginKVIndexRow.__table__  # type: ignore[assignment]
_ENTRY: Table = PluginKVIndexEntryRow.__table__  # type: ignore[assignment]


def _h(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _ns(ns: object) -> str:
    text = check_text("namespace", ns)
    if len(text) > NAMESPACE_LEN:
        raise KeyValueError(f"storage namespace is {len(text)} characters; the limit is "
                            f"{NAMESPACE_LEN}")
    return text


class DatabaseKeyValueStore:
    """:class:`~plughost.storage.kv.KeyValueBackend` in the plughost database.

    :param database: the open :class:`~plughost.storage.db.Database` (migrated; not closed by
        :meth:`close`: it belongs to its owner).
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._closed = False

    # ---- reads

    def get(self, ns: str, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default``."""
        ns, khash = _ns(ns), _h(check_key(key))
        with self._db.transaction(write=False) as s:
            raw = s.execute(select(_KV.c.value).where(_KV.c.ns == ns, _KV.c.key_hash == khash)
                            ).scalar_one_or_none()
        return json.loads(raw) if raw is not None else default

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, Any]:
        """The values of the keys that exist, in request order."""
        ns = _ns(ns)
        wanted = [check_key(k) for k in keys]
        by_hash = {_h(k): k for k in wanted}
        found: dict[str, Any] = {}
        hashes = list(by_hash)
        with self._db.transaction(write=False) as s:
            for i in range(0, len(hashes), 500):
                chunk = hashes[i:i + 500]
                for khash, raw in s.execute(select(_KV.c.key_hash, _KV.c.value).where(
                        _KV.c.ns == ns, _KV.c.key_hash.in_(chunk))):
                    found[by_hash[khash]] = json.loads(raw)
        return {k: found[k] for k in wanted if k in found}

    def keys(self, ns: str, prefix: str = "") -> list[str]:
        """Keys in the namespace (optionally starting with ``prefix``), sorted."""
        ns = _ns(ns)
        check_text("key prefix", prefix)
        with self._db.transaction(write=False) as s:
            keys = s.execute(select(_KV.c.key).where(_KV.c.ns == ns)).scalars().all()
        # Compared here, not in SQL: MySQL's default collation ignores case.
        return sorted(k for k in keys if k.startswith(prefix))

    def query_by_index(self, ns: str, name: str, value: Any) -> dict[str, Any]:
        """``{key: value}`` for every entry whose indexed field equals ``value``, by key."""
        ns = _ns(ns)
        with self._db.transaction(write=False) as s:
            known = self._indexes(s, ns)
            if name not in known:
                raise unknown_index(ns, name, known)
            rows = s.execute(
                select(_KV.c.key, _KV.c.value).join(
                    _ENTRY, (_ENTRY.c.ns == _KV.c.ns) & (_ENTRY.c.key_hash == _KV.c.key_hash))
                .where(_ENTRY.c.ns == ns, _ENTRY.c.name == name,
                       _ENTRY.c.value_hash == _h(dump(name, value)))).all()
        return {k: json.loads(v) for k, v in sorted(rows)}

    def indexes(self, ns: str) -> dict[str, str]:
        """``{index name: key path}`` for a namespace."""
        with self._db.transaction(write=False) as s:
            return self._indexes(s, _ns(ns))

    @staticmethod
    def _indexes(s: Session, ns: str) -> dict[str, str]:
        return {n: p for n, p in s.execute(select(_IDX.c.name, _IDX.c.path)
                                           .where(_IDX.c.ns == ns))}

    # ---- writes (each one atomic)

    def set(self, ns: str, key: str, value: Any) -> None:
        """Store ``value`` at ``key``."""
        self.apply(ns, [("set", key, value)])

    def set_many(self, ns: str, items: Mapping[str, Any]) -> None:
        """Store several values atomically."""
        self.apply(ns, [("set", k, v) for k, v in items.items()])

    def delete(self, ns: str, key: str) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        ns, khash = _ns(ns), _h(check_key(key))

        def work(s: Session) -> bool:
            self._unindex(s, ns, khash)
            result = s.execute(delete(_KV).where(_KV.c.ns == ns, _KV.c.key_hash == khash))
            return bool(getattr(result, "rowcount", 0))

        return bool(self._retrying(work))

    def clear(self, ns: str) -> None:
        """Remove every key of the namespace (indexes stay defined, now empty)."""
        self.apply(ns, [("clear", "", None)])

    def create_index(self, ns: str, name: str, key_path: str) -> None:
        """Index the values' field at dotted ``key_path`` under ``name``; existing data is
        indexed. Re-creating an index with the same path is a no-op; another path is refused."""
        check_index_spec(name, key_path)
        ns = _ns(ns)

        def work(s: Session) -> None:
            existing = self._indexes(s, ns).get(name)
            if existing is not None:
                if existing != key_path:
                    raise KeyValueError(
                        f"index {name!r} already indexes {existing!r}; drop it first")
                return
            s.execute(insert(_IDX).values(ns=ns, name=name, path=key_path))
            for khash, raw in s.execute(select(_KV.c.key_hash, _KV.c.value)
                                        .where(_KV.c.ns == ns)).all():
                self._index_one(s, ns, name, key_path, khash, json.loads(raw))

        self._retrying(work)

    def drop_index(self, ns: str, name: str) -> None:
        """Remove an index."""
        ns = _ns(ns)

        def work(s: Session) -> None:
            s.execute(delete(_IDX).where(_IDX.c.ns == ns, _IDX.c.name == name))
            s.execute(delete(_ENTRY).where(_ENTRY.c.ns == ns, _ENTRY.c.name == name))

        self._retrying(work)

    def transaction(self, ns: str) -> Transaction:
        """A buffered transaction on ``ns``; use as a context manager or commit/rollback it."""
        return Transaction(self, ns)

    def apply(self, ns: str, ops: Iterable[tuple[str, str, Any]]) -> None:
        """Apply ``(op, key, value)`` operations (``set``/``delete``/``clear``) all or nothing."""
        ns = _ns(ns)
        prepared = prepare_ops(ops)  # validate everything before touching the database

        def work(s: Session) -> None:
            indexes = self._indexes(s, ns)
            for op, key, value, raw in prepared:
                if op == "clear":
                    s.execute(delete(_ENTRY).where(_ENTRY.c.ns == ns))
                    s.execute(delete(_KV).where(_KV.c.ns == ns))
                    continue
                khash = _h(key)
                if indexes:
                    self._unindex(s, ns, khash)
                s.execute(delete(_KV).where(_KV.c.ns == ns, _KV.c.key_hash == khash))
                if op == "set":
                    s.execute(insert(_KV).values(ns=ns, key_hash=khash, key=key, value=raw))
                    for name, path in indexes.items():
                        self._index_one(s, ns, name, path, khash, value)

        self._retrying(work)

    # ---- plumbing

    @staticmethod
    def _unindex(s: Session, ns: str, khash: str) -> None:
        s.execute(delete(_ENTRY).where(_ENTRY.c.ns == ns, _ENTRY.c.key_hash == khash))

    @staticmethod
    def _index_one(s: Session, ns: str, name: str, path: str, khash: str, value: Any) -> None:
        field = extract(value, path)
        if field is not MISSING:
            s.execute(insert(_ENTRY).values(ns=ns, name=name, key_hash=khash,
                                            value_hash=_h(dump(khash, field))))

    def _retrying(self, work: Any) -> Any:
        if self._closed:
            raise KeyValueError("this storage is closed; plugins get a new one when activated")
        for attempt in range(_RETRIES):
            try:
                with self._db.transaction(write=True) as s:
                    return work(s)
            except sa_exc.IntegrityError:
                # Another node inserted the same key (or index entry) between our delete and
                # insert: the whole transaction rolled back; run it again.
                if attempt == _RETRIES - 1:
                    raise KeyValueError("storage write kept colliding with concurrent writes "
                                        "of the same keys; retry it") from None
            except sa_exc.OperationalError as exc:
                if "deadlock" not in str(exc).lower() or attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Stop accepting writes; idempotent (the database belongs to its owner)."""
        self._closed = True

    def __enter__(self) -> DatabaseKeyValueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_sqlite_kv(path: Path, store: DatabaseKeyValueStore) -> int:
    """Copy an embedded ``storage.db`` (from before storage moved into the database) into
    ``store`` — indexes and values — and return the number of values copied. Values already in
    the database win: an import never overwrites."""
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "kv" not in tables:
            return 0
        for ns, name, ipath in (src.execute("SELECT ns, name, path FROM kv_index")
                                if "kv_index" in tables else ()):
            store.create_index(ns, name, ipath)
        copied = 0
        for ns, key, raw in src.execute("SELECT ns, key, value FROM kv"):
            if store.get(ns, key, MISSING) is MISSING:
                store.set(ns, key, json.loads(raw))
                copied += 1
        return copied
    finally:
        src.close()

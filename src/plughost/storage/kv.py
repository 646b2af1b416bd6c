"""Plugin key-value storage: namespaces, batches, secondary indexes, transactions.

This is the backend behind ``ctx.storage``. :class:`KeyValueBackend` is the contract; two
implementations satisfy it: :class:`KeyValueStore` (embedded: one SQLite file, the default of a
bare :class:`~plughost.host.PluginHost`) and
:class:`~plughost.storage.kv_db.DatabaseKeyValueStore` (the plughost database — PostgreSQL,
MySQL or SQLite — what the management service and ``plughost serve`` use, so every node of a
cluster sees the same data). Values are JSON. A secondary index
maps a dotted key path inside the values (``"user.email"``) to the keys holding each value, and
is maintained on every write. A :class:`Transaction` buffers writes and applies them in one
SQLite transaction on commit: all or nothing, and reads inside it see its own writes.

No permission checks here: :mod:`plughost.services.hostapi.storage` wraps this with them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from plughost.errors import KeyValueError

__all__ = [
    "MAX_KEY_LENGTH",
    "MISSING",
    "KeyValueBackend",
    "KeyValueStore",
    "Transaction",
    "check_index_spec",
    "check_key",
    "check_text",
    "dump",
    "extract",
    "prepare_ops",
    "unknown_index",
]

MAX_KEY_LENGTH: Final = 1024
#: What :func:`extract` returns for a path the value does not have.
MISSING: Final = object()
_MISSING: Final = MISSING

_SQL = """
CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv_index (ns TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (ns, name));
CREATE TABLE IF NOT EXISTS kv_index_entry (ns TEXT NOT NULL, name TEXT NOT NULL,
    value TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (ns, name, value, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_index_entry_key ON kv_index_entry (ns, key);
"""


def check_text(what: str, text: object) -> str:
    """A name stored as text (namespace, key, prefix, index name) must be a string that UTF-8
    can encode: a lone surrogate (``"\\ud800"``) cannot be stored and is refused here."""
    if not isinstance(text, str):
        raise KeyValueError(f"storage {what}s must be strings, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise KeyValueError(
            f"the storage {what} {text[:40]!r} is not valid text (it contains "
            f"{text[exc.start]!r}, an unpaired surrogate); use a proper Unicode string"
        ) from None
    return text


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise KeyValueError(f"storage keys must be non-empty strings, got {key!r}"[:200])
    if len(key) > MAX_KEY_LENGTH:
        raise KeyValueError(f"storage key is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    return check_text("key", key)


def dump(key: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except RecursionError:
        raise KeyValueError(
            f"the value for {key!r} nests too deeply to be stored; flatten it"
        ) from None
    except (TypeError, ValueError) as exc:
        raise KeyValueError(
            f"the value for {key!r} cannot be stored: {exc}. Store JSON data (dict, list, str, "
            "int, float, bool, None)."
        ) from exc


def extract(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


@runtime_checkable
class KeyValueBackend(Protocol):
    """What ``ctx.storage`` needs of a store (see the module doc for the implementations).

    Every write method is atomic; :meth:`apply` applies ``(op, key, value)`` operations
    (``set`` / ``delete`` / ``clear``) all or nothing. Names are validated the same way by
    every implementation (:func:`check_key`, :func:`check_text`, :func:`dump`).
    """

    def get(self, ns: str, key: str, default: Any = None) -> Any: ...
    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, Any]: ...
    def keys(self, ns: str, prefix: str = "") -> list[str]: ...
    def query_by_index(self, ns: str, name: str, value: Any) -> dict[str, Any]: ...
    def indexes(self, ns: str) -> dict[str, str]: ...
    def set(self, ns: str, key: str, value: Any) -> None: ...
    def set_many(self, ns: str, items: Mapping[str, Any]) -> None: ...
    def delete(self, ns: str, key: str) -> bool: ...
    def clear(self, ns: str) -> None: ...
    def create_index(self, ns: str, name: str, key_path: str) -> None: ...
    def drop_index(self, ns: str, name: str) -> None: ...
    def transaction(self, ns: str) -> Transaction: ...
    def apply(self, ns: str, ops: Iterable[tuple[str, str, Any]]) -> None: ...
    def close(self) -> None: ...


def prepare_ops(ops: Iterable[tuple[str, str, Any]]) -> list[tuple[str, str, Any, str | None]]:
    """Validate ``(op, key, value)`` operations before anything is written: each becomes
    ``(op, key, value, json text or None)``."""
    prepared: list[tuple[str, str, Any, str | None]] = []
    for op, key, value in ops:
        if op == "clear":
            prepared.append((op, "", None, None))
        elif op in ("set", "delete"):
            check_key(key)
            prepared.append((op, key, value, dump(key, value) if op == "set" else None))
        else:
            raise KeyValueError(f"unknown storage operation {op!r}")
    return prepared


def check_index_spec(name: str, key_path: str) -> None:
    """An index needs a name and a dotted key path, both storable text."""
    if not name or not key_path:
        raise KeyValueError("an index needs a name and a dotted key path such as 'user.email'")
    check_text("index name", name)
    check_text("index key path", key_path)


def unknown_index(ns: str, name: str, known: Iterable[str]) -> KeyValueError:
    """The refusal of a query on an index that does not exist, naming the known ones."""
    names = ", ".join(sorted(known)) or "none"
    return KeyValueError(
        f"no index {name!r} in namespace {ns!r} (indexes: {names}); "
        "create it with create_index(name, key_path)"
    )


class KeyValueStore:
    """Key-value storage for every plugin namespace, in one SQLite file.

    :param path: the database file (``<home>/storage.db``) or ``":memory:"``.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=10
        )
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SQL)
        self._lock = threading.RLock()
        self._indexes: dict[str, dict[str, str]] = {}
        for ns, name, ipath in self._db.execute("SELECT ns, name, path FROM kv_index"):
            self._indexes.setdefault(ns, {})[name] = ipath
        self._closed = False

    # ---- reads

    def get(self, ns: str, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default``."""
        row = self._db.execute(
            "SELECT value FROM kv WHERE ns = ? AND key = ?",
            (check_text("namespace", ns), check_key(key)),
        ).fetchone()
        return json.loads(row[0]) if row is not None else default

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, Any]:
        """The values of the keys that exist."""
        check_text("namespace", ns)
        keys = [check_key(k) for k in keys]
        out: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for key, value in self._db.execute(
                    f"SELECT key, value FROM kv WHERE ns = ? AND key IN ({marks})", [ns, *chunk]
                ):
                    out[key] = json.loads(value)
        return {k: out[k] for k in keys if k in out}

    def keys(self, ns: str, prefix: str = "") -> list[str]:
        """Keys in the namespace (optionally starting with ``prefix``), sorted."""
        check_text("namespace", ns)
        check_text("key prefix", prefix)
        with self._lock:
            rows = self._db.execute(
                "SELECT key FROM kv WHERE ns = ? AND substr(key, 1, ?) = ? ORDER BY key",
                (ns, len(prefix), prefix),
            ).fetchall()
        return [r[0] for r in rows]

    def query_by_index(self, ns: str, name: str, value: Any) -> dict[str, Any]:
        """``{key: value}`` for every entry whose indexed field equals ``value``, by key."""
        check_text("namespace", ns)
        if name not in self._indexes.get(ns, {}):
            raise unknown_index(ns, name, self._indexes.get(ns, {}))
        with self._lock:
            rows = self._db.execute(
                "SELECT kv.key, kv.value FROM kv_index_entry e JOIN kv ON kv.ns = e.ns AND "
                "kv.key = e.key WHERE e.ns = ? AND e.name = ? AND e.value = ? ORDER BY kv.key",
                (ns, name, dump(name, value)),
            ).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def indexes(self, ns: str) -> dict[str, str]:
        """``{index name: key path}`` for a namespace."""
        return dict(self._indexes.get(ns, {}))

    # ---- writes (each one atomic)

    def set(self, ns: str, key: str, value: Any) -> None:
        """Store ``value`` at ``key``."""
        self.apply(ns, [("set", key, value)])

    def set_many(self, ns: str, items: Mapping[str, Any]) -> None:
        """Store several values atomically."""
        self.apply(ns, [("set", k, v) for k, v in items.items()])

    def delete(self, ns: str, key: str) -> bool:
        """Remove ``key``; ``True`` if it existed."""
        existed = self.get(ns, key, _MISSING) is not _MISSING
        self.apply(ns, [("delete", key, None)])
        return existed

    def clear(self, ns: str) -> None:
        """Remove every key of the namespace (indexes stay defined, now empty)."""
        self.apply(ns, [("clear", "", None)])

    def create_index(self, ns: str, name: str, key_path: str) -> None:
        """Index the values' field at dotted ``key_path`` under ``name``; existing data is indexed.

        Re-creating an index with the same path is a no-op; a different path is refused.
        """
        check_index_spec(name, key_path)
        check_text("namespace", ns)
        existing = self._indexes.get(ns, {}).get(name)
        if existing is not None:
            if existing != key_path:
                raise KeyValueError(f"index {name!r} already indexes {existing!r}; drop it first")
            return
        with self._lock, self._write():
            self._db.execute("INSERT INTO kv_index VALUES (?, ?, ?)", (ns, name, key_path))
            for key, raw in self._db.execute(
                "SELECT key, value FROM kv WHERE ns = ?", (ns,)
            ).fetchall():
                self._index_one(ns, name, key_path, key, json.loads(raw))
            self._indexes.setdefault(ns, {})[name] = key_path

    def drop_index(self, ns: str, name: str) -> None:
        """Remove an index."""
        with self._lock, self._write():
            self._db.execute("DELETE FROM kv_index WHERE ns = ? AND name = ?", (ns, name))
            self._db.execute("DELETE FROM kv_index_entry WHERE ns = ? AND name = ?", (ns, name))
            self._indexes.get(ns, {}).pop(name, None)

    def transaction(self, ns: str) -> Transaction:
        """A buffered transaction on ``ns``; use as a context manager or commit/rollback it."""
        return Transaction(self, ns)

    def apply(self, ns: str, ops: Iterable[tuple[str, str, Any]]) -> None:
        """Apply ``(op, key, value)`` operations (``set``/``delete``/``clear``) all or nothing."""
        check_text("namespace", ns)
        prepared = prepare_ops(ops)  # validate everything before touching the database
        indexes = self._indexes.get(ns, {})
        with self._lock, self._write():
            for op, key, value, raw in prepared:
                if op == "clear":
                    self._db.execute("DELETE FROM kv WHERE ns = ?", (ns,))
                    self._db.execute("DELETE FROM kv_index_entry WHERE ns = ?", (ns,))
                    continue
                if indexes:
                    self._db.execute(
                        "DELETE FROM kv_index_entry WHERE ns = ? AND key = ?", (ns, key)
                    )
                if op == "delete":
                    self._db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))
                else:
                    self._db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (ns, key, raw))
                    for name, path in indexes.items():
                        self._index_one(ns, name, path, key, value)

    def _index_one(self, ns: str, name: str, path: str, key: str, value: Any) -> None:
        field = extract(value, path)
        if field is not _MISSING:
            self._db.execute(
                "INSERT OR IGNORE INTO kv_index_entry VALUES (?, ?, ?, ?)",
                (ns, name, dump(key, field), key),
            )

    @contextmanager
    def _write(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database; idempotent."""
        if not self._closed:
            self._closed = True
            self._db.close()

    def __enter__(self) -> KeyValueStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Transaction:
    """Buffered writes to one namespace, applied atomically by :meth:`commit`.

    As a context manager it commits on success and rolls back if the block raises. Reads through
    the transaction see its own pending writes.
    """

    def __init__(self, store: KeyValueBackend, ns: str) -> None:
        self._store = store
        self._ns = ns
        self._ops: list[tuple[str, str, Any]] = []
        self._pending: dict[str, Any] = {}
        self._cleared = False
        self._done = False

    @property
    def operations(self) -> list[tuple[str, str, Any]]:
        """The buffered ``(op, key, value)`` operations, in order."""
        return list(self._ops)

    def _open(self) -> None:
        if self._done:
            raise KeyValueError(
                "this transaction is already committed or rolled back; start a new one"
            )

    def get(self, key: str, default: Any = None) -> Any:
        """The value as it will be after commit."""
        self._open()
        if key in self._pending:
            value = self._pending[key]
            return default if value is _MISSING else value
        return default if self._cleared else self._store.get(self._ns, key, default)

    def set(self, key: str, value: Any) -> None:
        """Buffer a write (validated now, so a bad value fails here, not at commit)."""
        self._open()
        dump(check_key(key), value)
        self._ops.append(("set", key, value))
        self._pending[key] = value

    def delete(self, key: str) -> None:
        """Buffer a delete."""
        self._open()
        self._ops.append(("delete", check_key(key), None))
        self._pending[key] = _MISSING

    def clear(self) -> None:
        """Buffer clearing the namespace."""
        self._open()
        self._ops.append(("clear", "", None))
        self._pending.clear()
        self._cleared = True

    def commit(self) -> None:
        """Apply every buffered operation atomically."""
        self._open()
        self._done = True
        self._store.apply(self._ns, self._ops)

    def rollback(self) -> None:
        """Discard every buffered operation."""
        self._open()
        self._done = True
        self._ops.clear()
        self._pending.clear()

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
